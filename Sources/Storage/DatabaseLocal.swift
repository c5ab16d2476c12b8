/// State that belongs to a database's writer thread, beside its connection: a store's working
/// copy that writes edit in place. It can be reached only with the connection (that is, inside a
/// write, on the writer thread), which debug builds check.
public final class DatabaseLocal<Value>: @unchecked Sendable {
    private var value: Value

    /// Creates the state with its first value.
    public init(_ value: Value) {
        self.value = value
    }

    /// The value, for code running with `connection` (on its thread).
    public subscript(connection: DatabaseConnection) -> Value {
        get {
            connection.checkThread()
            return value
        }
        _modify {
            connection.checkThread()
            yield &value
        }
    }

    /// The value, inside a write.
    public subscript(transaction: Transaction) -> Value {
        get { self[transaction.connection] }
        _modify { yield &self[transaction.connection] }
    }
}
