import NIOCore
import Synchronization

/// The SQLite-persisted store behind reliable delivery: unacknowledged outgoing messages, the next
/// sequence number per lane, the receive high-water mark per lane, and the epochs of both sides.
///
/// One file serves any number of peers (a cloud holds all its nodes in one outbox). Writes come
/// in batches, one transaction each; the file is in WAL mode. All methods are thread-safe and
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

        /// Creates a configuration.
        public init(path: String, synchronousFull: Bool = false, maxSizeBytes: Int? = nil) {
            self.path = path
            self.synchronousFull = synchronousFull
            self.maxSizeBytes = maxSizeBytes
        }
    }

    private let connection: Mutex<Storage>
    /// The configuration the outbox was opened with.
    public let configuration: Configuration

    /// Opens (or creates) the outbox file.
    public init(configuration: Configuration) throws(SQLiteError) {
        self.configuration = configuration
        let db = try SQLiteConnection(path: configuration.path)
        try db.execute("PRAGMA journal_mode=WAL")
        try db.execute("PRAGMA synchronous=\(configuration.synchronousFull ? "FULL" : "NORMAL")")
        try db.execute("PRAGMA busy_timeout=5000")
        if let maxSize = configuration.maxSizeBytes {
            try db.execute("PRAGMA max_page_count=\(max(8, maxSize / 4096))")
            try db.execute("PRAGMA page_size=4096")
        }
        try db.execute("""
            CREATE TABLE IF NOT EXISTS sessions(
                peer TEXT PRIMARY KEY, local_hi INTEGER NOT NULL, local_lo INTEGER NOT NULL,
                remote_hi INTEGER NOT NULL DEFAULT 0, remote_lo INTEGER NOT NULL DEFAULT 0);
            CREATE TABLE IF NOT EXISTS send_lanes(
                peer TEXT NOT NULL, lane INTEGER NOT NULL, next_seq INTEGER NOT NULL, PRIMARY KEY(peer, lane));
            CREATE TABLE IF NOT EXISTS outbox(
                peer TEXT NOT NULL, lane INTEGER NOT NULL, seq INTEGER NOT NULL, class INTEGER NOT NULL,
                key TEXT, message BLOB NOT NULL, PRIMARY KEY(peer, lane, seq));
            CREATE INDEX IF NOT EXISTS outbox_state_key ON outbox(peer, lane, key) WHERE key IS NOT NULL;
            CREATE TABLE IF NOT EXISTS receive_marks(
                peer TEXT NOT NULL, lane INTEGER NOT NULL, delivered INTEGER NOT NULL, PRIMARY KEY(peer, lane));
            """)
        connection = Mutex(Storage(db: db))
    }

    /// Loads (creating on first use) everything stored for `peer`.
    func loadSession(peer: String, limits: MessageLimits) throws(SQLiteError) -> StoredSession {
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
            let lanes = try db.statement("SELECT lane, next_seq FROM send_lanes WHERE peer = ?")
            lanes.bind(peer, at: 1)
            while try lanes.step() {
                session.nextSequence[Lane(rawValue: UInt8(truncatingIfNeeded: lanes.int64(at: 0)))] = UInt64(lanes.int64(at: 1))
            }
            let marks = try db.statement("SELECT lane, delivered FROM receive_marks WHERE peer = ?")
            marks.bind(peer, at: 1)
            while try marks.step() {
                session.delivered[Lane(rawValue: UInt8(truncatingIfNeeded: marks.int64(at: 0)))] = UInt64(marks.int64(at: 1))
            }
            let entries = try db.statement("SELECT lane, seq, class, key, message FROM outbox WHERE peer = ? ORDER BY lane, seq")
            entries.bind(peer, at: 1)
            while try entries.step() {
                let lane = Lane(rawValue: UInt8(truncatingIfNeeded: entries.int64(at: 0)))
                let sequence = UInt64(entries.int64(at: 1))
                let delivery: Delivery = entries.int64(at: 2) == 2 ? .state(key: entries.string(at: 3) ?? "") : .reliable
                var bytes = ByteBuffer(bytes: entries.blobBytes(at: 4))
                guard let message = try? MessageCodec.decode(from: &bytes, limits: limits) else {
                    throw SQLiteError(code: 11, message: "outbox row \(lane)/\(sequence) of \(peer) does not decode", sql: nil)
                }
                session.entries.append(StoredEntry(lane: lane, sequence: sequence, delivery: delivery, message: message))
                session.nextSequence[lane] = max(session.nextSequence[lane] ?? 1, sequence + 1)
            }
            return session
        }
    }

    /// Writes `batch` for `peer` in one transaction.
    func commit(_ batch: OutboxBatch, peer: String) throws(SQLiteError) {
        try connection.withLock { (storage: inout Storage) throws(SQLiteError) in
            let db = storage.db
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
                if !batch.appends.isEmpty {
                    let insert = try db.statement("INSERT OR REPLACE INTO outbox(peer, lane, seq, class, key, message) VALUES (?, ?, ?, ?, ?, ?)")
                    let supersede = try db.statement("DELETE FROM outbox WHERE peer = ? AND lane = ? AND key = ? AND seq < ?")
                    var highest: [Lane: UInt64] = [:]
                    for append in batch.appends {
                        storage.scratch.clear()
                        MessageCodec.encode(append.message, into: &storage.scratch)
                        insert.reset()
                        insert.bind(peer, at: 1)
                        insert.bind(Int64(append.lane.rawValue), at: 2)
                        insert.bind(Int64(append.sequence), at: 3)
                        insert.bind(Int64(append.delivery.wireCode), at: 4)
                        insert.bind(append.delivery.stateKey, at: 5)
                        try storage.scratch.withUnsafeReadableBytes { (bytes) throws(SQLiteError) in
                            insert.bindBlob(bytes, at: 6)
                            try insert.run()
                        }
                        if let key = append.delivery.stateKey {
                            supersede.reset()
                            supersede.bind(peer, at: 1)
                            supersede.bind(Int64(append.lane.rawValue), at: 2)
                            supersede.bind(key, at: 3)
                            supersede.bind(Int64(append.sequence), at: 4)
                            try supersede.run()
                        }
                        highest[append.lane] = max(highest[append.lane] ?? 0, append.sequence)
                    }
                    let next = try db.statement("INSERT INTO send_lanes(peer, lane, next_seq) VALUES (?, ?, ?) ON CONFLICT(peer, lane) DO UPDATE SET next_seq = max(next_seq, excluded.next_seq)")
                    for (lane, sequence) in highest {
                        next.reset()
                        next.bind(peer, at: 1)
                        next.bind(Int64(lane.rawValue), at: 2)
                        next.bind(Int64(sequence + 1), at: 3)
                        try next.run()
                    }
                }
                if !batch.acknowledged.isEmpty {
                    let delete = try db.statement("DELETE FROM outbox WHERE peer = ? AND lane = ? AND seq <= ?")
                    for (lane, sequence) in batch.acknowledged {
                        delete.reset()
                        delete.bind(peer, at: 1)
                        delete.bind(Int64(lane.rawValue), at: 2)
                        delete.bind(Int64(sequence), at: 3)
                        try delete.run()
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
    }

    /// The number of stored, unacknowledged messages for `peer` (for tests and metrics).
    public func pendingCount(peer: String) throws(SQLiteError) -> Int {
        try connection.withLock { (storage: inout Storage) throws(SQLiteError) -> Int in
            let count = try storage.db.statement("SELECT count(*) FROM outbox WHERE peer = ?")
            count.bind(peer, at: 1)
            _ = try count.step()
            return Int(count.int64(at: 0))
        }
    }

    private struct Storage: ~Copyable {
        let db: SQLiteConnection
        var scratch = ByteBuffer()
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
