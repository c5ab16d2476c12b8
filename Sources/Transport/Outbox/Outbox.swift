import NIOCore
import Storage
import Synchronization

/// The SQLite-persisted store behind reliable delivery: unacknowledged outgoing messages, the next
/// sequence number per lane, the receive high-water mark per lane, and the epochs of both sides.
///
/// One file serves any number of peers (a cloud holds all its nodes in one outbox). Writes come
/// in batches, one transaction each, on the file's ``Database`` writer thread (never the
/// caller's); the file is in WAL mode. Messages are stored as segments:
/// the messages one batch appends to one lane become one row of concatenated MESSAGE frames
/// (`docs/protocol.md`), deleted once the peer acknowledged its last sequence. A row per message
/// costs SQLite about 8 µs here; a row per segment makes the outbox cost what its bytes cost.
///
/// Opening reads what every peer left behind (the rows, not yet decoded) so that a channel is
/// created without touching the disk (``takeSession(peer:limits:)``).
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

    /// The configuration the outbox was opened with.
    public let configuration: Configuration
    private let database: Database
    /// The writer thread's state: the reserve, a scratch buffer, whether rows were deleted.
    private let local: DatabaseLocal<WriterState>
    /// What each peer left behind, read at open and handed to its channel once.
    private let leftBehind: Mutex<[String: RawSession]>

    /// Opens (or creates) the outbox file and reads what it holds. Blocks while it reads:
    /// call it at start-up.
    public init(configuration: Configuration) throws(SQLiteError) {
        self.configuration = configuration
        let loaded = Mutex<[String: RawSession]>([:])
        database = try Database(
            configuration: DatabaseConfiguration(
                path: configuration.path, synchronousFull: configuration.synchronousFull, maxSizeBytes: configuration.maxSizeBytes,
                // A log of at most about 2 MiB (SQLite's default is 4 MiB), which the reserve covers.
                walAutocheckpointPages: 512,
                // Only the writer reads (at open, and tests' counts).
                separateReader: false,
                // Pages freed by acknowledgements go back to the file system (see compact).
                incrementalVacuum: true),
            setUp: { (connection) throws in
                try Self.createSchema(connection)
                let sessions = try Self.readAll(connection)
                loaded.withLock { $0 = sessions }
            })
        leftBehind = Mutex(loaded.withLock { $0 })
        let reserve = DiskReserve(path: configuration.path + "-reserve", bytes: configuration.reserveBytes)
        reserve.hold()
        local = DatabaseLocal(WriterState(reserve: reserve))
    }

    /// Finishes queued writes and closes the file.
    public func close() async {
        await database.close()
    }

    /// The layout this build reads and writes (`PRAGMA user_version`).
    static let schemaVersion: Int64 = 2

    private static func createSchema(_ db: DatabaseConnection) throws(SQLiteError) {
        let found = try db.integer("PRAGMA user_version") ?? 0
        let tableCount = try db.integer("SELECT count(*) FROM sqlite_master WHERE type = 'table'") ?? 0
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

    /// Every peer's rows, undecoded.
    private static func readAll(_ db: DatabaseConnection, peer only: String? = nil) throws(SQLiteError) -> [String: RawSession] {
        var sessions: [String: RawSession] = [:]
        // Every peer's rows (at open), or one peer's (`WHERE peer = ?1`, on the primary keys).
        let filter = only == nil ? "" : " WHERE peer = ?1"
        func statement(_ sql: String) throws(SQLiteError) -> PreparedStatement {
            let statement = try db.statement(sql)
            if let only { statement.bind(only, at: 1) }
            return statement
        }
        let select = try statement("SELECT peer, local_hi, local_lo, remote_hi, remote_lo FROM sessions" + filter)
        defer { select.reset() }
        while try select.step() {
            guard let peer = select.string(at: 0) else { continue }
            sessions[peer] = RawSession(
                localEpoch: MessageID(high: UInt64(bitPattern: select.int64(at: 1)), low: UInt64(bitPattern: select.int64(at: 2))),
                remoteEpoch: MessageID(high: UInt64(bitPattern: select.int64(at: 3)), low: UInt64(bitPattern: select.int64(at: 4))))
        }
        let lanes = try statement("SELECT peer, lane, next_seq, acknowledged FROM send_lanes" + filter)
        defer { lanes.reset() }
        while try lanes.step() {
            guard let peer = lanes.string(at: 0), sessions[peer] != nil else { continue }
            let lane = Lane(rawValue: UInt8(truncatingIfNeeded: lanes.int64(at: 1)))
            sessions[peer]!.nextSequence[lane] = UInt64(lanes.int64(at: 2))
            sessions[peer]!.acknowledged[lane] = UInt64(lanes.int64(at: 3))
        }
        let marks = try statement("SELECT peer, lane, delivered FROM receive_marks" + filter)
        defer { marks.reset() }
        while try marks.step() {
            guard let peer = marks.string(at: 0), sessions[peer] != nil else { continue }
            sessions[peer]!.delivered[Lane(rawValue: UInt8(truncatingIfNeeded: marks.int64(at: 1)))] = UInt64(marks.int64(at: 2))
        }
        let segments = try statement("SELECT peer, lane, first_seq, frames FROM segments" + filter + " ORDER BY peer, lane, first_seq")
        defer { segments.reset() }
        while try segments.step() {
            guard let peer = segments.string(at: 0), sessions[peer] != nil else { continue }
            let segment = RawSegment(
                lane: Lane(rawValue: UInt8(truncatingIfNeeded: segments.int64(at: 1))), firstSequence: segments.int64(at: 2),
                frames: segments.withBytes(at: 3) { ByteBuffer(bytes: $0) })
            sessions[peer]!.segments.append(segment)
        }
        return sessions
    }

    /// What `peer` left behind when the outbox was opened, decoded for its channel (and then
    /// forgotten here: call it once per peer), or a new session with a fresh epoch, stored with
    /// the peer's first commit. Never touches the disk.
    func takeSession(peer: String, limits: FrameLimits) throws(SQLiteError) -> StoredSession {
        guard let raw = leftBehind.withLock({ $0.removeValue(forKey: peer) }) else {
            var session = StoredSession()
            session.localEpoch = MessageID(high: .random(in: 1 ... .max), low: .random(in: 1 ... .max))
            return session
        }
        return try Self.decode(raw, peer: peer, limits: limits)
    }

    /// What the file holds for `peer` now, read from disk (for tests and tools).
    func storedSession(peer: String, limits: FrameLimits) async throws -> StoredSession {
        let raw = try await database.read { (connection) throws -> RawSession? in
            try Self.readAll(connection, peer: peer)[peer]
        }
        guard let raw else { return StoredSession() }
        return try Self.decode(raw, peer: peer, limits: limits)
    }

    private static func decode(_ raw: RawSession, peer: String, limits: FrameLimits) throws(SQLiteError) -> StoredSession {
        var session = StoredSession(localEpoch: raw.localEpoch, remoteEpoch: raw.remoteEpoch, nextSequence: raw.nextSequence, delivered: raw.delivered)
        var frameLimits = limits
        frameLimits.maxFrameLength = Int.max >> 2
        for segment in raw.segments {
            let lane = segment.lane
            var frames = segment.frames
            while frames.readableBytes > 0 {
                let decoded: Frame?
                do {
                    decoded = try FrameCodec.decode(from: &frames, limits: frameLimits)
                } catch {
                    throw SQLiteError(code: 11, message: "outbox segment \(lane)/\(segment.firstSequence) of \(peer) does not decode: \(error)", sql: nil)
                }
                guard case .message(let body)? = decoded, body.lane == lane, body.sequence > 0 else {
                    let why = decoded == nil ? "it ends inside a frame" : "it holds a frame that is not a reliable message of its lane"
                    throw SQLiteError(code: 11, message: "outbox segment \(lane)/\(segment.firstSequence) of \(peer) does not decode: \(why)", sql: nil)
                }
                session.nextSequence[lane] = max(session.nextSequence[lane] ?? 1, body.sequence + 1)
                guard body.sequence > raw.acknowledged[lane] ?? 0 else { continue }
                session.entries.append(StoredEntry(lane: lane, sequence: body.sequence, delivery: body.delivery, message: body.message))
            }
        }
        session.entries = Self.droppingSuperseded(session.entries)
        return session
    }

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
    func submitCommit(_ batch: OutboxBatch, peer: String, completion: @escaping @Sendable (Result<Void, any Error>) -> Void) {
        database.submitExclusive({ [self] (connection) throws in
            try commit(batch, peer: peer, db: connection, state: &local[connection])
        }, completion: completion)
    }

    /// ``submitCommit(_:peer:completion:)``, awaited (tests).
    func commit(_ batch: OutboxBatch, peer: String) async throws {
        try await database.exclusive { [self] (connection) throws in
            try commit(batch, peer: peer, db: connection, state: &local[connection])
        }
    }

    private func commit(_ batch: OutboxBatch, peer: String, db: DatabaseConnection, state storage: inout WriterState) throws(SQLiteError) {
        defer { Self.restoreReserve(&storage, db: db) }
        var marks = batch
        marks.appends = []
        if !marks.isEmpty {
            do throws(SQLiteError) {
                try commitMarks(marks, peer: peer, db: db)
            } catch where error.isFull && storage.reserve.release() {
                // The log may be what fills the disk: empty it into the reserve's room first.
                Self.compact(&storage, db: db)
                try commitMarks(marks, peer: peer, db: db)
            }
            if !marks.acknowledged.isEmpty { storage.deletedSinceCompaction = true }
        }
        guard !batch.appends.isEmpty else { return }
        do throws(SQLiteError) {
            try db.transaction { () throws(SQLiteError) in try writeSegments(batch, peer: peer, db: db, storage: &storage) }
        } catch where error.isFull && storage.deletedSinceCompaction {
            // Compacting writes a few log frames itself: the reserve makes room for them.
            let released = storage.reserve.release()
            Self.compact(&storage, db: db)
            if released { storage.reserve.hold() }
            try db.transaction { () throws(SQLiteError) in try writeSegments(batch, peer: peer, db: db, storage: &storage) }
        }
    }

    /// Gives pages freed by deleted rows back to the file system: `incremental_vacuum` moves
    /// them to the end of the file, and a checkpoint that empties the log truncates both. Without
    /// it the freed pages would stay inside the file, and the log, which needs new disk space
    /// for every write, could not be written on a full disk.
    private static func compact(_ storage: inout WriterState, db: DatabaseConnection) {
        storage.deletedSinceCompaction = false
        try? db.execute("PRAGMA incremental_vacuum")
        try? db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    }

    /// Takes the reserve back after it was given up, once deleted rows may have made room.
    private static func restoreReserve(_ storage: inout WriterState, db: DatabaseConnection) {
        guard !storage.reserve.isHeld, storage.deletedSinceCompaction else { return }
        compact(&storage, db: db)
        storage.reserve.hold()
    }

    /// Acknowledgements, receive marks and a new peer epoch, in one transaction.
    private func commitMarks(_ batch: OutboxBatch, peer: String, db: DatabaseConnection) throws(SQLiteError) {
        try db.transaction { () throws(SQLiteError) in
            try Self.saveSession(batch.localEpoch, peer: peer, db: db)
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

    /// Stores the session row of a peer whose channel started without one (its first commit).
    private static func saveSession(_ epoch: MessageID, peer: String, db: DatabaseConnection) throws(SQLiteError) {
        let insert = try db.statement("INSERT INTO sessions(peer, local_hi, local_lo) VALUES (?, ?, ?) ON CONFLICT(peer) DO NOTHING")
        insert.bind(peer, at: 1)
        insert.bind(Int64(bitPattern: epoch.high), at: 2)
        insert.bind(Int64(bitPattern: epoch.low), at: 3)
        try insert.run()
    }

    /// Appends each lane's entries as segment rows of at most ``maxSegmentBytes`` and advances
    /// the lanes' next sequence numbers. Runs inside the commit transaction.
    private func writeSegments(_ batch: OutboxBatch, peer: String, db: DatabaseConnection, storage: inout WriterState) throws(SQLiteError) {
        try Self.saveSession(batch.localEpoch, peer: peer, db: db)
        let appends = batch.appends
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
                    try insert.run(bindingBlob: bytes, at: 5)
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
    public func pendingCount(peer: String) async throws -> Int {
        try await storedSession(peer: peer, limits: FrameLimits()).entries.count
    }

    /// The number of segment rows stored for `peer`.
    func segmentCount(peer: String) async throws -> Int {
        try await database.read { (connection) throws -> Int in
            let count = try connection.statement("SELECT count(*) FROM segments WHERE peer = ?")
            defer { count.reset() }
            count.bind(peer, at: 1)
            _ = try count.step()
            return Int(count.int64(at: 0))
        }
    }

    /// What the writer thread keeps between commits.
    private struct WriterState {
        let reserve: DiskReserve
        var scratch = ByteBuffer()
        /// Acknowledgements deleted rows since the last ``Outbox/compact(_:db:)``.
        var deletedSinceCompaction = false
    }
}

/// A peer's rows as read at open, not yet decoded.
private struct RawSession: Sendable {
    var localEpoch: MessageID
    var remoteEpoch: MessageID
    var nextSequence: [Lane: UInt64] = [:]
    var acknowledged: [Lane: UInt64] = [:]
    var delivered: [Lane: UInt64] = [:]
    var segments: [RawSegment] = []
}

/// One segment row: concatenated MESSAGE frames of one lane.
private struct RawSegment: Sendable {
    var lane: Lane
    var firstSequence: Int64
    var frames: ByteBuffer
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
    /// The channel's own epoch: stored with the peer's first commit.
    var localEpoch = MessageID.zero
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
