/// One write inside a grouped transaction (``Database/write(_:)``): the connection to run
/// statements on, and what to do once the outcome is known.
///
/// Writes that arrive together share one SQLite transaction, each in a savepoint of its own:
/// a write that throws is rolled back alone, and the others still commit. The hooks run on the
/// database's writer thread, in the order the writes ran, before any waiting caller resumes:
/// ``afterCommit(_:)`` once the transaction is durable, ``afterRollback(_:)`` when this write's
/// changes were undone (it threw, or the commit failed; then it may run again on its own).
public final class Transaction {
    /// The writer connection, inside the open transaction.
    public let connection: DatabaseConnection
    var committed: [() -> Void] = []
    var rolledBack: [() -> Void] = []

    init(connection: DatabaseConnection) {
        self.connection = connection
    }

    /// Runs `action` after the transaction commits (publish to watchers, update caches).
    public func afterCommit(_ action: @escaping () -> Void) {
        committed.append(action)
    }

    /// Runs `action` if this write's changes are rolled back (undo in-memory edits).
    public func afterRollback(_ action: @escaping () -> Void) {
        rolledBack.append(action)
    }

    /// A cached prepared statement on the connection.
    public func statement(_ sql: String) throws(SQLiteError) -> PreparedStatement {
        try connection.statement(sql)
    }

    /// Runs statements that return no rows on the connection.
    public func execute(_ sql: String) throws(SQLiteError) {
        try connection.execute(sql)
    }

    func runCommitted() {
        let actions = committed
        committed = []
        rolledBack = []
        for action in actions { action() }
    }

    func runRolledBack() {
        let actions = rolledBack
        committed = []
        rolledBack = []
        for action in actions.reversed() { action() }
    }
}
