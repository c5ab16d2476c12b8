/// A failed SQLite call, with the result code, SQLite's message and the statement involved.
public struct SQLiteError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The (extended) SQLite result code.
    public var code: Int32
    /// SQLite's error message.
    public var message: String
    /// The SQL being run, if any.
    public var sql: String?

    /// Whether the error means the disk or the database is full.
    public var isFull: Bool { code & 0xFF == 13 }

    public var description: String {
        "SQLite error \(code): \(message)" + (sql.map { " (in: \($0))" } ?? "")
    }
}
