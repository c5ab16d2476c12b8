/// A write waiting for the writer thread: its body, and the caller to tell. Used on the writer
/// thread only once queued.
final class GroupedWrite: @unchecked Sendable {
    /// Runs alone and manages its own transactions.
    let exclusive: Bool
    /// Runs the body and keeps its outcome; whether it returned (rather than threw).
    private let perform: (Transaction) -> Bool
    /// Tells the caller the kept outcome.
    private let complete: () -> Void
    /// Tells the caller an error instead.
    private let fail: (any Error) -> Void

    init<T>(exclusive: Bool, body: @escaping @Sendable (Transaction) throws -> T, completion: @escaping @Sendable (Result<T, any Error>) -> Void) {
        self.exclusive = exclusive
        let outcome = OutcomeBox<T>()
        perform = { transaction in
            let result = Result { try body(transaction) }
            outcome.result = result
            if case .success = result { return true }
            return false
        }
        complete = { completion(outcome.result ?? .failure(SQLiteError(code: 1, message: "the write did not run"))) }
        fail = { error in completion(.failure(error)) }
    }

    /// Runs the body in `transaction`; whether it returned.
    func run(_ transaction: Transaction) -> Bool { perform(transaction) }

    /// Tells the caller what the body returned or threw.
    func finish() { complete() }

    /// Tells the caller `error`.
    func finish(_ failure: Result<Void, any Error>) {
        if case .failure(let error) = failure { fail(error) }
    }

    /// Runs an exclusive body on `connection` and tells the caller.
    func runExclusive(_ connection: DatabaseConnection) {
        _ = perform(Transaction(connection: connection))
        complete()
    }
}

private final class OutcomeBox<T> {
    var result: Result<T, any Error>?
}

/// Runs a group of writes in one transaction, each in a savepoint of its own.
enum GroupCommit {
    /// Runs the group; how many transactions it took (one, unless the group's failed as a whole).
    static func run(_ group: [GroupedWrite], on connection: DatabaseConnection) -> Int {
        if group.count > 1, runTogether(group, on: connection) { return 1 }
        // One write, or a group whose transaction failed as a whole: each on its own.
        for write in group { runAlone(write, on: connection) }
        return group.count > 1 ? group.count + 1 : 1
    }

    /// One transaction for the group; `false` (everything rolled back, no caller told) when
    /// the transaction as a whole failed: then each write runs again alone.
    private static func runTogether(_ group: [GroupedWrite], on connection: DatabaseConnection) -> Bool {
        do throws(SQLiteError) {
            try connection.run(cached: "BEGIN IMMEDIATE")
        } catch {
            return false
        }
        var transactions: [Transaction?] = []
        transactions.reserveCapacity(group.count)
        for write in group {
            let transaction = Transaction(connection: connection)
            do throws(SQLiteError) {
                try connection.run(cached: "SAVEPOINT grouped_write")
            } catch {
                return abandon(transactions, connection)
            }
            if write.run(transaction) {
                do throws(SQLiteError) {
                    try connection.run(cached: "RELEASE grouped_write")
                } catch {
                    transactions.append(transaction)
                    return abandon(transactions, connection)
                }
                transactions.append(transaction)
            } else {
                // SQLite may have rolled back the whole transaction itself (a full disk, I/O).
                guard connection.isInTransaction else {
                    transaction.runRolledBack()
                    return abandon(transactions, connection)
                }
                do throws(SQLiteError) {
                    try connection.run(cached: "ROLLBACK TO grouped_write")
                    try connection.run(cached: "RELEASE grouped_write")
                } catch {
                    transaction.runRolledBack()
                    return abandon(transactions, connection)
                }
                transaction.runRolledBack()
                transactions.append(nil)
            }
        }
        connection.rewindBusyStatements()
        do throws(SQLiteError) {
            try connection.run(cached: "COMMIT")
        } catch {
            return abandon(transactions, connection)
        }
        for transaction in transactions { transaction?.runCommitted() }
        for write in group { write.finish() }
        return true
    }

    /// Rolls back the group's transaction and undoes what its writes did in memory.
    private static func abandon(_ transactions: [Transaction?], _ connection: DatabaseConnection) -> Bool {
        connection.rollback()
        for transaction in transactions.reversed() { transaction?.runRolledBack() }
        return false
    }

    private static func runAlone(_ write: GroupedWrite, on connection: DatabaseConnection) {
        do throws(SQLiteError) {
            try connection.run(cached: "BEGIN IMMEDIATE")
        } catch {
            write.finish(.failure(error))
            return
        }
        let transaction = Transaction(connection: connection)
        guard write.run(transaction) else {
            connection.rollback()
            transaction.runRolledBack()
            write.finish()
            return
        }
        connection.rewindBusyStatements()
        do throws(SQLiteError) {
            try connection.run(cached: "COMMIT")
        } catch {
            connection.rollback()
            transaction.runRolledBack()
            write.finish(.failure(error))
            return
        }
        transaction.runCommitted()
        write.finish()
    }
}
