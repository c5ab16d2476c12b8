/// A failed SQLite call, with the result code, SQLite's message and the statement involved.
public struct SQLiteError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The (extended) SQLite result code.
    public var code: Int32
    /// SQLite's error message.
    public var message: String
    /// The SQL being run, if any.
    public var sql: String?

    /// Creates an error.
    public init(code: Int32, message: String, sql: String? = nil) {
        self.code = code
        self.message = message
        self.sql = sql
    }

    /// Whether the error means the disk or the database is full (`SQLITE_FULL`).
    public var isFull: Bool { code & 0xFF == 13 }

    /// Whether the database file is not one this build can read (`SQLITE_CORRUPT`, `SQLITE_NOTADB`).
    public var isCorrupt: Bool { code & 0xFF == 11 || code & 0xFF == 26 }

    /// `SQLITE_MISUSE`: the database was closed, or a statement was used wrongly.
    static func closed(_ path: String) -> SQLiteError {
        SQLiteError(code: 21, message: "the database \(path) is closed")
    }

    public var description: String {
        "SQLite error \(code): \(message)" + (sql.map { " (in: \($0))" } ?? "")
    }
}
