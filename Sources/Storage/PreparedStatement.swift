import CSQLite

/// A prepared statement owned by its ``DatabaseConnection`` (cached by SQL text, used on the
/// connection's thread only). Binding indices start at 1, column indices at 0.
public final class PreparedStatement {
    private let handle: OpaquePointer
    private unowned let connection: DatabaseConnection
    /// The statement's SQL text.
    public let sql: String

    init(handle: OpaquePointer, connection: DatabaseConnection, sql: String) {
        self.handle = handle
        self.connection = connection
        self.sql = sql
    }

    deinit { sqlite3_finalize(handle) }

    /// Rewinds the statement and clears its bindings.
    public func reset() {
        connection.checkThread()
        sqlite3_reset(handle)
        sqlite3_clear_bindings(handle)
    }

    /// Rewinds the statement, bindings kept.
    func rewind() { sqlite3_reset(handle) }

    /// Whether the statement has stepped and not been reset since.
    var isBusy: Bool { sqlite3_stmt_busy(handle) != 0 }

    /// Binds an integer.
    public func bind(_ value: Int64, at index: Int32) {
        sqlite3_bind_int64(handle, index, value)
    }

    /// Binds an integer, or NULL.
    public func bind(_ value: Int64?, at index: Int32) {
        if let value { sqlite3_bind_int64(handle, index, value) } else { sqlite3_bind_null(handle, index) }
    }

    /// Binds text (SQLite copies it), or NULL.
    public func bind(_ value: String?, at index: Int32) {
        if let value {
            sqlite3_bind_text(handle, index, value, -1, csqlite_transient())
        } else {
            sqlite3_bind_null(handle, index)
        }
    }

    /// Binds a copy of `bytes` as a blob.
    public func bind(bytes: [UInt8], at index: Int32) {
        bytes.withUnsafeBytes { raw in bindCopy(raw, at: index) }
    }

    /// Binds a copy of `bytes` as a blob (SQLite copies them; nothing to keep alive).
    public func bindCopy(_ bytes: UnsafeRawBufferPointer, at index: Int32) {
        sqlite3_bind_blob(handle, index, bytes.baseAddress ?? UnsafeRawPointer(bitPattern: 1), Int32(bytes.count), csqlite_transient())
    }

    /// Binds `bytes` without a copy, runs the statement to completion and unbinds them: the bytes
    /// are only borrowed for the call.
    public func run(bindingBlob bytes: UnsafeRawBufferPointer, at index: Int32) throws(SQLiteError) {
        sqlite3_bind_blob(handle, index, bytes.baseAddress ?? UnsafeRawPointer(bitPattern: 1), Int32(bytes.count), csqlite_static())
        defer { sqlite3_bind_null(handle, index) }
        try run()
    }

    /// Steps once; `true` when a row is available.
    @discardableResult
    public func step() throws(SQLiteError) -> Bool {
        connection.checkThread()
        let result = sqlite3_step(handle)
        switch result {
        case SQLITE_ROW: return true
        case SQLITE_DONE: return false
        default:
            let error = connection.error(result, sql: sql)
            sqlite3_reset(handle)
            throw error
        }
    }

    /// Steps to completion, for statements that return no rows, and rewinds the statement
    /// (bindings kept) so that it can be bound and run again: binding a statement left at its
    /// end fails silently in SQLite and the old values would be used again.
    public func run() throws(SQLiteError) {
        defer { sqlite3_reset(handle) }
        while try step() {}
    }

    /// The integer in `column` of the current row.
    public func int64(at column: Int32) -> Int64 { sqlite3_column_int64(handle, column) }

    /// Whether the column of the current row is NULL.
    public func isNull(at column: Int32) -> Bool { sqlite3_column_type(handle, column) == SQLITE_NULL }

    /// The text in `column` of the current row, or `nil` for NULL.
    public func string(at column: Int32) -> String? {
        guard let text = sqlite3_column_text(handle, column) else { return nil }
        let count = Int(sqlite3_column_bytes(handle, column))
        return String(unsafeUninitializedCapacity: count) { buffer in
            UnsafeMutableRawBufferPointer(buffer).copyMemory(from: UnsafeRawBufferPointer(start: text, count: count))
            return count
        }
    }

    /// Calls `body` with the bytes of `column` in the current row (a blob or text). The bytes
    /// belong to SQLite and are valid only inside `body`: copy what must outlive it.
    public func withBytes<T, E: Error>(at column: Int32, _ body: (UnsafeRawBufferPointer) throws(E) -> T) throws(E) -> T {
        let bytes = sqlite3_column_blob(handle, column)
        let count = Int(sqlite3_column_bytes(handle, column))
        guard count > 0, let bytes else { return try body(UnsafeRawBufferPointer(start: nil, count: 0)) }
        return try body(UnsafeRawBufferPointer(start: bytes, count: count))
    }

    /// A copy of the bytes of `column` in the current row.
    public func bytes(at column: Int32) -> [UInt8] {
        withBytes(at: column) { Array($0) }
    }
}
