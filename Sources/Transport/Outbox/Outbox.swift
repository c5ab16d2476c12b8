import NIOCore
import Synchronization

/// The SQLite-persisted store behind reliable delivery: unacknowledged outgoing messages, the next
/// sequence number per lane, the receive high-water mark per lane, and the epochs of both sides.
///
/// One file serves any number of peers (a cloud holds all its nodes in one outbox). Writes come
/// in batches, one transaction each; the file is in WAL mode. Messages are stored as segments:
/// the messages one batch appends to one lane become one row of concatenated MESSAGE frames
/// (`docs/protocol.md`), deleted once the peer acknowledged its last sequence. A row per message
/// costs SQLite about 8 µs here; a row per segment makes the outbox cost what its bytes cost. All methods are thread-safe and
/// blocking: channels call them from a background thread, never from an event loop.
public final class Outbox: Sendable {
    /// How the outbox file is opened.
    public struct Configuration: Sendable, Hashable {
        /// Path of the SQLite file (created if absent).
        public var path: String
        /// `PRAGMA synchronous`: `NORMAL` (default; durable across process crashes, and across
        /// power loss up to the last checkpoint) or `FULL` (every commit synced).
        public var synchronousFull: Bool
        /// Upper bound on the file size in bytes; a write that would exceed it fails with a
        /// "database or disk is full" error and loses nothing already stored. `nil`: no bound.
        public var maxSizeBytes: Int?
        /// Bytes of frames one segment row holds at most; a batch larger than this is stored as
        /// several rows (a row is deleted only once all its messages are acknowledged).
        /// Default 4 MiB.
        public var maxSegmentBytes: Int
        /// Bytes of disk held in a file beside the outbox (`{path}-reserve`) and given up when
        /// the disk is full, so that acknowledgements can still delete rows and free space: in
        /// WAL mode even a delete needs room for its log frames, and emptying a log that filled
        /// the disk needs room for its pages in the main file (the log is checkpointed at 2 MiB).
        /// Without a reserve the outbox could never shrink again. 0 holds none. Default 4 MiB.
        public var reserveBytes: Int

        /// Creates a configuration.
        public init(path: String, synchronousFull: Bool = false, maxSizeBytes: Int? = nil, maxSegmentBytes: Int = 4 << 20, reserveBytes: Int = 4 << 20) {
            self.path = path
            self.synchronousFull = synchronousFull
            self.maxSizeBytes = maxSizeBytes
            self.maxSegmentBytes = maxSegmentBytes
            self.reserveBytes = reserveBytes
        }
    }

    private let connection: Mutex<Storage>
    /// The configuration the outbox was opened with.
    public let configuration: Configuration

    /// Opens (or creates) the outbox file.
    public init(configuration: Configuration) throws(SQLiteError) {
        self.configuration = configuration
        let db = try SQLiteConnection(path: configuration.path)
        // Before WAL mode, which fixes it: pages freed by acknowledgements can go back to the
        // file system (see reclaimSpace). A file made before keeps its mode.
        try db.execute("PRAGMA auto_vacuum = INCREMENTAL")
        try db.useWriteAheadLog(synchronousFull: configuration.synchronousFull, maxSizeBytes: configuration.maxSizeBytes)
        // A log of at most about 2 MiB (SQLite's default is 4 MiB), which the reserve covers.
        try db.execute("PRAGMA wal_autocheckpoint = 512")
        try Self.createSchema(db)
        let reserve = DiskReserve(path: configuration.path + "-reserve", bytes: configuration.reserveBytes)
        reserve.hold()
        connection = Mutex(Storage(db: db, reserve: reserve))
    }

    /// Loads (creating on first use) everything stored for `peer`.
    /// The layout this build reads and writes (`PRAGMA user_version`).
    static let schemaVersion: Int64 = 2

    private static func createSchema(_ db: SQLiteConnection) throws(SQLiteError) {
        let version = try db.statement("PRAGMA user_version")
        _ = try version.step()
        let found = version.int64(at: 0)
        version.reset()
        let tables = try db.statement("SELECT count(*) FROM sqlite_master WHERE type = 'table'")
        _ = try tables.step()
        let tableCount = tables.int64(at: 0)
        tables.reset()
        if found == schemaVersion { return }
        guard found == 0, tableCount == 0 else {
            throw SQLiteError(
                code: 1, message: "outbox file has layout \(found) (\(tableCount) tables); this build reads layout \(schemaVersion) only",
                sql: nil)
        }
        try db.execute("""
            CREATE TABLE sessions(
                peer TEXT PRIMARY KEY, local_hi INTEGER NOT NULL, local_lo INTEGER NOT NULL,
                remote_hi INTEGER NOT NULL DEFAULT 0, remote_lo INTEGER NOT NULL DEFAULT 0);
            CREATE TABLE send_lanes(
                peer TEXT NOT NULL, lane INTEGER NOT NULL, next_seq INTEGER NOT NULL,
                acknowledged INTEGER NOT NULL DEFAULT 0, PRIMARY KEY(peer, lane));
            CREATE TABLE segments(
                peer TEXT NOT NULL, lane INTEGER NOT NULL, first_seq INTEGER NOT NULL, last_seq INTEGER NOT NULL,
                frames BLOB NOT NULL, PRIMARY KEY(peer, lane, first_seq));
            CREATE TABLE receive_marks(
                peer TEXT NOT NULL, lane INTEGER NOT NULL, delivered INTEGER NOT NULL, PRIMARY KEY(peer, lane));
            PRAGMA user_version = \(schemaVersion);
            """)
    }

    func loadSession(peer: String, limits: FrameLimits) throws(SQLiteError) -> StoredSession {
        try connection.withLock { (storage: inout Storage) throws(SQLiteError) -> StoredSession in
            let db = storage.db
            var session = StoredSession()
            let select = try db.statement("SELECT local_hi, local_lo, remote_hi, remote_lo FROM sessions WHERE peer = ?")
            select.bind(peer, at: 1)
            if try select.step() {
                session.localEpoch = MessageID(high: UInt64(bitPattern: select.int64(at: 0)), low: UInt64(bitPattern: select.int64(at: 1)))
                session.remoteEpoch = MessageID(high: UInt64(bitPattern: select.int64(at: 2)), low: UInt64(bitPattern: select.int64(at: 3)))
            } else {
                session.localEpoch = MessageID(high: .random(in: 1 ... .max), low: .random(in: 1 ... .max))
                let insert = try db.statement("INSERT INTO sessions(peer, local_hi, local_lo) VALUES (?, ?, ?)")
                insert.bind(peer, at: 1)
                insert.bind(Int64(bitPattern: session.localEpoch.high), at: 2)
                insert.bind(Int64(bitPattern: session.localEpoch.low), at: 3)
                try insert.run()
            }
            var acknowledged: [Lane: UInt64] = [:]
            let lanes = try db.statement("SELECT lane, next_seq, acknowledged FROM send_lanes WHERE peer = ?")
            lanes.bind(peer, at: 1)
            while try lanes.step() {
                let lane = Lane(rawValue: UInt8(truncatingIfNeeded: lanes.int64(at: 0)))
                session.nextSequence[lane] = UInt64(lanes.int64(at: 1))
                acknowledged[lane] = UInt64(lanes.int64(at: 2))
            }
            let marks = try db.statement("SELECT lane, delivered FROM receive_marks WHERE peer = ?")
            marks.bind(peer, at: 1)
            while try marks.step() {
                session.delivered[Lane(rawValue: UInt8(truncatingIfNeeded: marks.int64(at: 0)))] = UInt64(marks.int64(at: 1))
            }
            let segments = try db.statement("SELECT lane, first_seq, frames FROM segments WHERE peer = ? ORDER BY lane, first_seq")
            segments.bind(peer, at: 1)
            var frameLimits = limits
            frameLimits.maxFrameLength = Int.max >> 2
            while try segments.step() {
                let lane = Lane(rawValue: UInt8(truncatingIfNeeded: segments.int64(at: 0)))
                var frames = ByteBuffer(bytes: segments.blobBytes(at: 2))
                while frames.readableBytes > 0 {
                    let decoded: Frame?
                    do {
                        decoded = try FrameCodec.decode(from: &frames, limits: frameLimits)
                    } catch {
                        throw SQLiteError(code: 11, message: "outbox segment \(lane)/\(segments.int64(at: 1)) of \(peer) does not decode: \(error)", sql: nil)
                    }
                    guard case .message(let body)? = decoded, body.lane == lane, body.sequence > 0 else {
                        let why = decoded == nil ? "it ends inside a frame" : "it holds a frame that is not a reliable message of its lane"
                        throw SQLiteError(code: 11, message: "outbox segment \(lane)/\(segments.int64(at: 1)) of \(peer) does not decode: \(why)", sql: nil)
                    }
                    session.nextSequence[lane] = max(session.nextSequence[lane] ?? 1, body.sequence + 1)
                    guard body.sequence > acknowledged[lane] ?? 0 else { continue }
                    session.entries.append(StoredEntry(lane: lane, sequence: body.sequence, delivery: body.delivery, message: body.message))
                }
            }
            session.entries = Self.droppingSuperseded(session.entries)
            return session
        }
    }

    /// Writes `batch` for `peer` in one transaction.
    /// Keeps, of the state messages of one key on one lane, only the newest.
    private static func droppingSuperseded(_ entries: [StoredEntry]) -> [StoredEntry] {
        struct StateKey: Hashable { var lane: Lane; var key: String }
        var newest: [StateKey: UInt64] = [:]
        for entry in entries {
            guard let key = entry.delivery.stateKey else { continue }
            newest[StateKey(lane: entry.lane, key: key), default: 0] = max(newest[StateKey(lane: entry.lane, key: key)] ?? 0, entry.sequence)
        }
        guard !newest.isEmpty else { return entries }
        return entries.filter { entry in
            guard let key = entry.delivery.stateKey else { return true }
            return newest[StateKey(lane: entry.lane, key: key)] == entry.sequence
        }
    }

    /// Writes `batch`: first what frees or marks (acknowledgements, receive marks, a new peer
    /// epoch) in one transaction, then the appends in another, so that a full disk refuses new
    /// messages but never the acknowledgements that make room.
    ///
    /// On a full disk even a delete needs room for its log frames: the marks and the compaction
    /// may use the reserve (``Configuration/reserveBytes``), appends never do. Once
    /// acknowledgements deleted rows, their pages go back to the file system (``compact(_:)``)
    /// before the reserve is taken back and before appends that found the disk full are tried
    /// again.
    func commit(_ batch: OutboxBatch, peer: String) throws(SQLiteError) {
        try connection.withLock { (storage: inout Storage) throws(SQLiteError) in
            defer { Self.restoreReserve(&storage) }
            let db = storage.db
            var marks = batch
            marks.appends = []
            if !marks.isEmpty {
                do throws(SQLiteError) {
                    try commitMarks(marks, peer: peer, db: db)
                } catch where error.isFull && storage.reserve.release() {
                    // The log may be what fills the disk: empty it into the reserve's room first.
                    Self.compact(&storage)
                    try commitMarks(marks, peer: peer, db: db)
                }
                if !marks.acknowledged.isEmpty { storage.deletedSinceCompaction = true }
            }
            guard !batch.appends.isEmpty else { return }
            do throws(SQLiteError) {
                try db.transaction { () throws(SQLiteError) in try writeSegments(batch.appends, peer: peer, storage: &storage) }
            } catch where error.isFull && storage.deletedSinceCompaction {
                // Compacting writes a few log frames itself: the reserve makes room for them.
                let released = storage.reserve.release()
                Self.compact(&storage)
                if released { storage.reserve.hold() }
                try db.transaction { () throws(SQLiteError) in try writeSegments(batch.appends, peer: peer, storage: &storage) }
            }
        }
    }

    /// Gives pages freed by deleted rows back to the file system: `incremental_vacuum` moves
    /// them to the end of the file, and a checkpoint that empties the log truncates both. Without
    /// it the freed pages would stay inside the file, and the log, which needs new disk space
    /// for every write, could not be written on a full disk.
    private static func compact(_ storage: inout Storage) {
        storage.deletedSinceCompaction = false
        try? storage.db.execute("PRAGMA incremental_vacuum")
        try? storage.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    }

    /// Takes the reserve back after it was given up, once deleted rows may have made room.
    private static func restoreReserve(_ storage: inout Storage) {
        guard !storage.reserve.isHeld, storage.deletedSinceCompaction else { return }
        compact(&storage)
        storage.reserve.hold()
    }

    /// Acknowledgements, receive marks and a new peer epoch, in one transaction.
    private func commitMarks(_ batch: OutboxBatch, peer: String, db: SQLiteConnection) throws(SQLiteError) {
        try db.transaction { () throws(SQLiteError) in
            if let epoch = batch.remoteEpoch {
                let update = try db.statement("UPDATE sessions SET remote_hi = ?, remote_lo = ? WHERE peer = ?")
                update.bind(Int64(bitPattern: epoch.high), at: 1)
                update.bind(Int64(bitPattern: epoch.low), at: 2)
                update.bind(peer, at: 3)
                try update.run()
                let clear = try db.statement("DELETE FROM receive_marks WHERE peer = ?")
                clear.bind(peer, at: 1)
                try clear.run()
            }
            if !batch.acknowledged.isEmpty {
                let delete = try db.statement("DELETE FROM segments WHERE peer = ? AND lane = ? AND last_seq <= ?")
                let mark = try db.statement("INSERT INTO send_lanes(peer, lane, next_seq, acknowledged) VALUES (?, ?, ?, ?) ON CONFLICT(peer, lane) DO UPDATE SET acknowledged = max(acknowledged, excluded.acknowledged)")
                for (lane, sequence) in batch.acknowledged {
                    delete.reset()
                    delete.bind(peer, at: 1)
                    delete.bind(Int64(lane.rawValue), at: 2)
                    delete.bind(Int64(sequence), at: 3)
                    try delete.run()
                    mark.reset()
                    mark.bind(peer, at: 1)
                    mark.bind(Int64(lane.rawValue), at: 2)
                    mark.bind(Int64(sequence + 1), at: 3)
                    mark.bind(Int64(sequence), at: 4)
                    try mark.run()
                }
            }
            if !batch.delivered.isEmpty {
                let mark = try db.statement("INSERT INTO receive_marks(peer, lane, delivered) VALUES (?, ?, ?) ON CONFLICT(peer, lane) DO UPDATE SET delivered = excluded.delivered")
                for (lane, sequence) in batch.delivered {
                    mark.reset()
                    mark.bind(peer, at: 1)
                    mark.bind(Int64(lane.rawValue), at: 2)
                    mark.bind(Int64(sequence), at: 3)
                    try mark.run()
                }
            }
        }
    }

    /// The number of stored, unacknowledged messages for `peer` (for tests and metrics).
    /// Appends each lane's entries as segment rows of at most ``maxSegmentBytes`` and advances
    /// the lanes' next sequence numbers. Runs inside the commit transaction.
    private func writeSegments(_ appends: [StoredEntry], peer: String, storage: inout Storage) throws(SQLiteError) {
        let db = storage.db
        let insert = try db.statement("INSERT INTO segments(peer, lane, first_seq, last_seq, frames) VALUES (?, ?, ?, ?, ?)")
        let next = try db.statement("INSERT INTO send_lanes(peer, lane, next_seq) VALUES (?, ?, ?) ON CONFLICT(peer, lane) DO UPDATE SET next_seq = max(next_seq, excluded.next_seq)")
        var lanes: [Lane] = []
        var byLane: [Lane: [StoredEntry]] = [:]
        for append in appends {
            if byLane[append.lane] == nil { lanes.append(append.lane) }
            byLane[append.lane, default: []].append(append)
        }
        for lane in lanes {
            let entries = byLane[lane]!
            var start = 0
            while start < entries.count {
                storage.scratch.clear()
                var end = start
                while end < entries.count, end == start || storage.scratch.readableBytes < configuration.maxSegmentBytes {
                    let entry = entries[end]
                    FrameCodec.encodeMessage(
                        MessageFrame(lane: lane, sequence: entry.sequence, delivery: entry.delivery, message: entry.message),
                        into: &storage.scratch)
                    end += 1
                }
                insert.reset()
                insert.bind(peer, at: 1)
                insert.bind(Int64(lane.rawValue), at: 2)
                insert.bind(Int64(entries[start].sequence), at: 3)
                insert.bind(Int64(entries[end - 1].sequence), at: 4)
                try storage.scratch.withUnsafeReadableBytes { (bytes) throws(SQLiteError) in
                    insert.bindBlob(bytes, at: 5)
                    try insert.run()
                }
                start = end
            }
            next.reset()
            next.bind(peer, at: 1)
            next.bind(Int64(lane.rawValue), at: 2)
            next.bind(Int64(entries[entries.count - 1].sequence + 1), at: 3)
            try next.run()
        }
    }

    /// The number of messages held for `peer` that it has not acknowledged (superseded state
    /// messages excluded): what a restart would replay.
    public func pendingCount(peer: String) throws(SQLiteError) -> Int {
        try loadSession(peer: peer, limits: FrameLimits()).entries.count
    }

    /// The number of segment rows stored for `peer`.
    func segmentCount(peer: String) throws(SQLiteError) -> Int {
        try connection.withLock { (storage: inout Storage) throws(SQLiteError) -> Int in
            let count = try storage.db.statement("SELECT count(*) FROM segments WHERE peer = ?")
            count.bind(peer, at: 1)
            _ = try count.step()
            return Int(count.int64(at: 0))
        }
    }

    private struct Storage: ~Copyable {
        let db: SQLiteConnection
        let reserve: DiskReserve
        var scratch = ByteBuffer()
        /// Acknowledgements deleted rows since the last ``Outbox/compact(_:)``.
        var deletedSinceCompaction = false
    }
}

/// What an outbox holds for one peer, read at channel start.
struct StoredSession {
    var localEpoch = MessageID.zero
    var remoteEpoch = MessageID.zero
    var nextSequence: [Lane: UInt64] = [:]
    var delivered: [Lane: UInt64] = [:]
    var entries: [StoredEntry] = []
}

/// A persisted, unacknowledged outgoing message.
struct StoredEntry {
    var lane: Lane
    var sequence: UInt64
    var delivery: Delivery
    var message: Message
}

/// Changes to write in one transaction.
struct OutboxBatch {
    /// New reliable/state messages to persist (state messages supersede older ones of their key).
    var appends: [StoredEntry] = []
    /// Per lane, the highest sequence the peer acknowledged: rows up to it are deleted.
    var acknowledged: [Lane: UInt64] = [:]
    /// Per lane, the receive high-water mark to persist.
    var delivered: [Lane: UInt64] = [:]
    /// A new peer epoch: stored, and the receive marks of the old epoch are cleared.
    var remoteEpoch: MessageID?

    var isEmpty: Bool { appends.isEmpty && acknowledged.isEmpty && delivered.isEmpty && remoteEpoch == nil }
}
