import NIOCore
import Synchronization

/// One SQLite file, and the only way to reach it: every statement runs on the database's own
/// threads, never on the caller's.
///
/// - Writes (``write(_:)``) run on one writer thread. Writes that arrive while another group
///   commits are queued and then run together in one transaction (group commit), each in a
///   savepoint of its own: each caller is told its own result, and one write that fails is rolled
///   back alone.
/// - Reads (``read(_:)``) run in a read transaction on a second connection and thread
///   (``DatabaseConfiguration/separateReader``), so a list is consistent and never waits for a
///   commit (WAL mode).
/// - ``exclusive(_:)`` runs a body alone on the writer thread, in charge of its own transactions
///   (the channel outbox's full-disk handling needs that).
///
/// The file is in WAL mode with a busy timeout; it and its `-wal`/`-shm` files are created 0600,
/// missing directories 0700, and an existing file that others could read is narrowed to 0600.
public final class Database: Sendable {
    /// The configuration the database was opened with.
    public let configuration: DatabaseConfiguration
    private let writer: DatabaseWorker
    private let reader: DatabaseWorker?
    private let queue = Mutex(WriteQueue())
    private let counters = DatabaseCounters()

    /// Opens (creating if needed) the database, then runs `setUp` on the writer thread before
    /// anything else (create or migrate the schema, load what the store keeps in memory). Blocks
    /// while the file opens: call it at start-up.
    public init(configuration: DatabaseConfiguration,
                setUp: (@Sendable (DatabaseConnection) throws -> Void)? = nil) throws(SQLiteError) {
        self.configuration = configuration
        try DatabaseFiles.prepare(path: configuration.path)
        writer = try DatabaseWorker { () throws(SQLiteError) in
            let connection = try DatabaseConnection(path: configuration.path)
            try Self.configureWriter(connection, configuration)
            do {
                try setUp?(connection)
            } catch let error as SQLiteError {
                throw error
            } catch {
                throw SQLiteError(code: 1, message: "setting up \(configuration.path): \(error)")
            }
            return connection
        }
        if configuration.separateReader {
            reader = try DatabaseWorker { () throws(SQLiteError) in
                let connection = try DatabaseConnection(path: configuration.path)
                try connection.execute("PRAGMA busy_timeout=\(configuration.busyTimeout.milliseconds); PRAGMA cache_size=-\(configuration.cacheKiB); PRAGMA query_only=1")
                return connection
            }
        } else {
            reader = nil
        }
        try DatabaseFiles.narrow(path: configuration.path)
    }

    /// Opens the database at `path` with the default configuration.
    public convenience init(path: String) throws(SQLiteError) {
        try self.init(configuration: DatabaseConfiguration(path: path))
    }

    private static func configureWriter(_ connection: DatabaseConnection, _ configuration: DatabaseConfiguration) throws(SQLiteError) {
        // First: the pragmas below wait for a connection another process (or a database object
        // being replaced) still holds.
        try connection.execute("PRAGMA busy_timeout=\(configuration.busyTimeout.milliseconds)")
        if configuration.incrementalVacuum {
            // Only takes effect before the first table exists; harmless afterwards.
            try connection.execute("PRAGMA auto_vacuum = INCREMENTAL")
        }
        try connection.execute("PRAGMA journal_mode=WAL")
        try connection.execute("PRAGMA synchronous=\(configuration.synchronousFull ? "FULL" : "NORMAL")")
        try connection.execute("PRAGMA wal_autocheckpoint=\(configuration.walAutocheckpointPages)")
        try connection.execute("PRAGMA cache_size=-\(configuration.cacheKiB)")
        if let maxSizeBytes = configuration.maxSizeBytes {
            try connection.execute("PRAGMA max_page_count=\(max(8, maxSizeBytes / 4096))")
            try connection.execute("PRAGMA page_size=4096")
        }
    }

    // MARK: writing

    /// Runs `body` on the writer thread inside a transaction it may share with other writes that
    /// arrived together, and returns once that transaction committed (or `body`'s changes were
    /// rolled back: then it throws what `body` threw, or the commit's error).
    ///
    /// `body` must change only the database and what it undoes in
    /// ``Transaction/afterRollback(_:)``: if the shared commit fails, every write of the group is
    /// rolled back and run again on its own.
    public func write<T: Sendable>(_ body: @escaping @Sendable (Transaction) throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            submitWrite(body) { continuation.resume(with: $0) }
        }
    }

    /// ``write(_:)`` with a completion handler instead of `await`: `completion` runs on the
    /// writer thread once the write committed or failed.
    public func submitWrite<T>(_ body: @escaping @Sendable (Transaction) throws -> T,
                               completion: @escaping @Sendable (Result<T, any Error>) -> Void) {
        enqueue(GroupedWrite(exclusive: false, body: body, completion: completion))
    }

    /// ``write(_:)`` queued now and awaited later (``PendingWrite/value()``): writes started one
    /// after another commit in that order, while the caller goes on.
    public func startWrite<T: Sendable>(_ body: @escaping @Sendable (Transaction) throws -> T) -> PendingWrite<T> {
        let pending = PendingWrite<T>()
        submitWrite(body) { pending.complete($0) }
        return pending
    }

    /// Runs `body` alone on the writer thread with the connection, outside any transaction: it
    /// begins and commits its own (hooks of ``Transaction`` do not apply).
    public func exclusive<T: Sendable>(_ body: @escaping @Sendable (DatabaseConnection) throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            submitExclusive(body) { continuation.resume(with: $0) }
        }
    }

    /// ``exclusive(_:)`` with a completion handler; `completion` runs on the writer thread.
    public func submitExclusive<T>(_ body: @escaping @Sendable (DatabaseConnection) throws -> T,
                                   completion: @escaping @Sendable (Result<T, any Error>) -> Void) {
        enqueue(GroupedWrite(exclusive: true, body: { transaction in try body(transaction.connection) }, completion: completion))
    }

    /// ``exclusive(_:)`` for callers that are not Swift tasks (an event loop, a thread of their
    /// own): blocks the calling thread until the body ran. Debug builds stop the process when a
    /// Swift task calls it, since the cooperative pool must never wait for the disk.
    public func exclusiveBlocking<T>(_ body: @escaping @Sendable (DatabaseConnection) throws -> T) throws -> T {
        Self.checkNotInTask("exclusiveBlocking")
        let result = BlockingResult<T>()
        submitExclusive(body) { result.set($0) }
        return try result.wait().get()
    }

    /// Runs `body` alone on the writer thread and waits for it, whoever calls: for a store that
    /// opens its tables in a database opened before (start-up, which waits for the file anyway).
    /// Everywhere else use the async forms.
    public func openBlocking<T>(_ body: @escaping @Sendable (DatabaseConnection) throws -> T) throws -> T {
        let result = BlockingResult<T>()
        submitExclusive(body) { result.set($0) }
        return try result.wait().get()
    }

    private func enqueue(_ write: GroupedWrite) {
        let start = queue.withLock { queue -> Bool? in
            guard !queue.closed else { return nil }
            queue.pending.append(write)
            guard !queue.draining else { return false }
            queue.draining = true
            return true
        }
        switch start {
        case nil: write.finish(.failure(SQLiteError.closed(configuration.path)))
        case true?: writer.submit { [self] connection in drain(connection) }
        case false?: break
        }
    }

    /// Runs queued writes, group after group, until the queue is empty.
    private func drain(_ connection: DatabaseConnection?) {
        while true {
            let group = queue.withLock { queue -> [GroupedWrite] in
                guard !queue.pending.isEmpty else {
                    queue.draining = false
                    return []
                }
                if queue.pending.first!.exclusive { return [queue.pending.removeFirst()] }
                var group: [GroupedWrite] = []
                while group.count < configuration.maxGroupedWrites, let next = queue.pending.first, !next.exclusive {
                    group.append(queue.pending.removeFirst())
                }
                return group
            }
            guard !group.isEmpty else { return }
            guard let connection else {
                for write in group { write.finish(.failure(SQLiteError.closed(configuration.path))) }
                continue
            }
            if group.count == 1 && group[0].exclusive {
                group[0].runExclusive(connection)
                counters.exclusive.add(1, ordering: .relaxed)
            } else {
                let transactions = GroupCommit.run(group, on: connection)
                counters.writes.add(group.count, ordering: .relaxed)
                counters.transactions.add(transactions, ordering: .relaxed)
                if group.count > 1 { counters.largestGroup.max(group.count) }
            }
        }
    }

    /// Writes waiting for the writer thread now (the group running excluded).
    public var queuedWrites: Int { queue.withLock { $0.pending.count } }

    /// What the database counted since it opened.
    public var statistics: DatabaseStatistics {
        DatabaseStatistics(
            writes: counters.writes.load(ordering: .relaxed), transactions: counters.transactions.load(ordering: .relaxed),
            exclusive: counters.exclusive.load(ordering: .relaxed), largestGroup: counters.largestGroup.load(ordering: .relaxed))
    }

    // MARK: reading

    /// Runs `body` in a read transaction (one consistent snapshot) on the reader thread, or on
    /// the writer thread between writes without a separate reader. Sees every write whose
    /// ``write(_:)`` has returned.
    public func read<T: Sendable>(_ body: @escaping @Sendable (DatabaseConnection) throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            submitRead(body) { continuation.resume(with: $0) }
        }
    }

    /// ``read(_:)`` with a completion handler; `completion` runs on the database's thread.
    public func submitRead<T>(_ body: @escaping @Sendable (DatabaseConnection) throws -> T,
                              completion: @escaping @Sendable (Result<T, any Error>) -> Void) {
        guard let reader else {
            submitExclusive({ connection in try Self.inReadTransaction(connection, body) }, completion: completion)
            return
        }
        let path = configuration.path
        reader.submit { connection in
            guard let connection else { return completion(.failure(SQLiteError.closed(path))) }
            completion(Result { try Self.inReadTransaction(connection, body) })
        }
    }

    /// ``read(_:)`` for callers that are not Swift tasks; blocks the calling thread (debug builds
    /// stop the process when a Swift task calls it).
    public func readBlocking<T>(_ body: @escaping @Sendable (DatabaseConnection) throws -> T) throws -> T {
        Self.checkNotInTask("readBlocking")
        let result = BlockingResult<T>()
        submitRead(body) { result.set($0) }
        return try result.wait().get()
    }

    private static func inReadTransaction<T>(_ connection: DatabaseConnection, _ body: (DatabaseConnection) throws -> T) throws -> T {
        try connection.run(cached: "BEGIN")
        defer { connection.endReadTransaction() }
        return try body(connection)
    }

    // MARK: closing

    /// Refuses new work, lets queued writes finish, then closes both connections and threads.
    public func close() async {
        queue.withLock { $0.closed = true }
        // Queued after every write submitted before the queue closed.
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            writer.submit { [self] connection in
                drain(connection)
                continuation.resume()
            }
        }
        await reader?.close()
        await writer.close()
    }

    private static func checkNotInTask(_ method: String) {
        #if DEBUG
        if withUnsafeCurrentTask(body: { $0 != nil }) {
            MisuseReport.report("Database.\(method) called from a Swift task: use the async form, which never blocks the cooperative pool")
        }
        #endif
    }
}

/// What a ``Database`` counted since it opened.
public struct DatabaseStatistics: Sendable, Hashable {
    /// Grouped writes (``Database/write(_:)``) run, whatever their outcome.
    public var writes: Int
    /// Transactions those writes ran in (fewer than writes when writes were grouped).
    public var transactions: Int
    /// Exclusive bodies run (``Database/exclusive(_:)``).
    public var exclusive: Int
    /// The most writes one transaction held.
    public var largestGroup: Int
}

final class DatabaseCounters: Sendable {
    let writes = Atomic<Int>(0)
    let transactions = Atomic<Int>(0)
    let exclusive = Atomic<Int>(0)
    let largestGroup = Atomic<Int>(0)
}

extension Atomic where Value == Int {
    /// Raises the value to `candidate` if it is larger.
    func max(_ candidate: Int) {
        var current = load(ordering: .relaxed)
        while candidate > current {
            let (exchanged, original) = compareExchange(expected: current, desired: candidate, ordering: .relaxed)
            if exchanged { return }
            current = original
        }
    }
}

/// Writes waiting for the writer thread.
struct WriteQueue: ~Copyable {
    var pending = CircularBuffer<GroupedWrite>()
    /// A drain job is submitted or running.
    var draining = false
    var closed = false
}

extension Duration {
    /// Whole milliseconds, for SQLite's pragmas.
    var milliseconds: Int64 { components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000 }
}
