import CSQLite

#if canImport(Glibc)
import Glibc
#endif

/// One owner of one `sqlite3*` connection: opens it, prepares and caches statements, runs
/// transactions and savepoints, and closes it in `deinit`.
///
/// A connection belongs to one thread, its ``Database``'s writer or reader: it is handed to
/// closures that run there and must not escape them. Debug builds check every call against the
/// owning thread and stop the process if SQLite is reached from anywhere else (a Swift task on
/// the cooperative pool above all, where one slow commit would stall every task).
public final class DatabaseConnection {
    private let handle: OpaquePointer
    private var statements: [String: PreparedStatement] = [:]
    /// The file this connection opened.
    public let path: String
    #if DEBUG
    private let owner: pthread_t
    #endif

    /// Opens (creating if needed) the database at `path` on the calling thread, which owns it
    /// from then on.
    init(path: String, readOnly: Bool = false) throws(SQLiteError) {
        var db: OpaquePointer?
        let flags = (readOnly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) | SQLITE_OPEN_NOMUTEX
        let result = sqlite3_open_v2(path, &db, flags, nil)
        guard result == SQLITE_OK, let db else {
            let message = db.map { String(cString: sqlite3_errmsg($0)) } ?? "cannot open \(path)"
            if let db { sqlite3_close_v2(db) }
            throw SQLiteError(code: result, message: message, sql: nil)
        }
        sqlite3_extended_result_codes(db, 1)
        handle = db
        self.path = path
        #if DEBUG
        owner = pthread_self()
        #endif
    }

    deinit {
        statements.removeAll()
        sqlite3_close_v2(handle)
    }

    /// Stops the process (debug builds) when called off the owning thread.
    @inline(__always)
    func checkThread() {
        #if DEBUG
        if pthread_equal(pthread_self(), owner) == 0 {
            MisuseReport.report("SQLite reached off its database thread (\(path)): run it inside Database.read/write, never from a Swift task or an event loop")
        }
        #endif
    }

    /// Rows changed by the last INSERT, UPDATE or DELETE.
    public var changes: Int {
        checkThread()
        return Int(sqlite3_changes(handle))
    }

    /// The rowid of the last successful INSERT.
    public var lastInsertRowID: Int64 {
        checkThread()
        return sqlite3_last_insert_rowid(handle)
    }

    /// Whether a transaction is open (SQLite is not in autocommit mode).
    public var isInTransaction: Bool {
        checkThread()
        return sqlite3_get_autocommit(handle) == 0
    }

    /// Runs one or more statements that return no rows (schema, pragmas); not cached.
    public func execute(_ sql: String) throws(SQLiteError) {
        checkThread()
        let result = sqlite3_exec(handle, sql, nil, nil, nil)
        guard result == SQLITE_OK else { throw error(result, sql: sql) }
    }

    /// A prepared statement for `sql`, cached for the life of the connection and reset for reuse.
    public func statement(_ sql: String) throws(SQLiteError) -> PreparedStatement {
        checkThread()
        if let cached = statements[sql] {
            cached.reset()
            return cached
        }
        var raw: OpaquePointer?
        let result = sqlite3_prepare_v3(handle, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &raw, nil)
        guard result == SQLITE_OK, let raw else { throw error(result, sql: sql) }
        let statement = PreparedStatement(handle: raw, connection: self, sql: sql)
        statements[sql] = statement
        return statement
    }

    /// The single integer the query `sql` answers (`PRAGMA user_version`, `SELECT count(*)`…),
    /// or `nil` when it returns no row or NULL.
    public func integer(_ sql: String) throws(SQLiteError) -> Int64? {
        let query = try statement(sql)
        defer { query.reset() }
        guard try query.step(), !query.isNull(at: 0) else { return nil }
        return query.int64(at: 0)
    }

    /// Runs `body` inside `BEGIN IMMEDIATE … COMMIT`, rolling back if it throws.
    public func transaction<T>(_ body: () throws(SQLiteError) -> T) throws(SQLiteError) -> T {
        try execute("BEGIN IMMEDIATE")
        do {
            let value = try body()
            try execute("COMMIT")
            return value
        } catch {
            rollback()
            throw error
        }
    }

    /// Rolls back the open transaction, if any (never fails: SQLite may have rolled it back itself).
    func rollback() {
        checkThread()
        if sqlite3_get_autocommit(handle) == 0 { _ = sqlite3_exec(handle, "ROLLBACK", nil, nil, nil) }
    }

    /// Ends a read transaction. A statement left on a row would keep its snapshot (and the log
    /// behind it) for ever: such statements are rewound first.
    func endReadTransaction() {
        rewindBusyStatements()
        do throws(SQLiteError) {
            try run(cached: "COMMIT")
        } catch {
            rollback()
        }
    }

    /// Rewinds every cached statement a body left on a row (bindings kept).
    func rewindBusyStatements() {
        for statement in statements.values where statement.isBusy { statement.rewind() }
    }

    /// Runs a cached statement that takes no parameters and returns no rows.
    func run(cached sql: String) throws(SQLiteError) {
        try statement(sql).run()
    }

    /// The error for `result`, with SQLite's current message.
    func error(_ result: Int32, sql: String?) -> SQLiteError {
        SQLiteError(code: result, message: String(cString: sqlite3_errmsg(handle)), sql: sql)
    }
}
