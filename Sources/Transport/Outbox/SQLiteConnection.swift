import CSQLite

/// One owner of one `sqlite3*` connection: opens it, prepares cached statements, runs
/// transactions and closes it in `deinit`. Not thread-safe: callers serialise access.
package final class SQLiteConnection {
    private let handle: OpaquePointer
    private var statements: [String: SQLiteStatement] = [:]

    /// Opens (creating if needed) the database at `path`.
    package init(path: String) throws(SQLiteError) {
        var db: OpaquePointer?
        let flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX
        let result = sqlite3_open_v2(path, &db, flags, nil)
        guard result == SQLITE_OK, let db else {
            let message = db.map { String(cString: sqlite3_errmsg($0)) } ?? "cannot open \(path)"
            if let db { sqlite3_close_v2(db) }
            throw SQLiteError(code: result, message: message, sql: nil)
        }
        sqlite3_extended_result_codes(db, 1)
        handle = db
    }

    deinit {
        statements.removeAll()
        sqlite3_close_v2(handle)
    }

    /// Switches to write-ahead logging with `synchronous=NORMAL` (durable across process crashes;
    /// the last commits may be lost on power loss) or `FULL`, a 5 s busy timeout and, when given,
    /// a size cap past which writes fail with `SQLITE_FULL`.
    package func useWriteAheadLog(synchronousFull: Bool = false, maxSizeBytes: Int? = nil) throws(SQLiteError) {
        try execute("PRAGMA journal_mode=WAL")
        try execute("PRAGMA synchronous=\(synchronousFull ? "FULL" : "NORMAL")")
        try execute("PRAGMA busy_timeout=5000")
        if let maxSizeBytes {
            try execute("PRAGMA max_page_count=\(max(8, maxSizeBytes / 4096))")
            try execute("PRAGMA page_size=4096")
        }
    }

    /// Rows changed by the last INSERT, UPDATE or DELETE.
    package var changes: Int { Int(sqlite3_changes(handle)) }

    /// Runs one or more statements that return no rows.
    package func execute(_ sql: String) throws(SQLiteError) {
        let result = sqlite3_exec(handle, sql, nil, nil, nil)
        guard result == SQLITE_OK else { throw error(result, sql: sql) }
    }

    /// A prepared statement for `sql`, cached for the life of the connection and reset for reuse.
    package func statement(_ sql: String) throws(SQLiteError) -> SQLiteStatement {
        if let cached = statements[sql] {
            cached.reset()
            return cached
        }
        var raw: OpaquePointer?
        let result = sqlite3_prepare_v3(handle, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &raw, nil)
        guard result == SQLITE_OK, let raw else { throw error(result, sql: sql) }
        let statement = SQLiteStatement(handle: raw, connection: self, sql: sql)
        statements[sql] = statement
        return statement
    }

    /// Runs `body` inside `BEGIN IMMEDIATE … COMMIT`, rolling back if it throws.
    package func transaction<T>(_ body: () throws(SQLiteError) -> T) throws(SQLiteError) -> T {
        try execute("BEGIN IMMEDIATE")
        do {
            let value = try body()
            try execute("COMMIT")
            return value
        } catch {
            _ = sqlite3_exec(handle, "ROLLBACK", nil, nil, nil)
            throw error
        }
    }

    /// The error for `result`, with SQLite's current message.
    package func error(_ result: Int32, sql: String?) -> SQLiteError {
        SQLiteError(code: result, message: String(cString: sqlite3_errmsg(handle)), sql: sql)
    }
}
