import NIOConcurrencyHelpers
@testable import Storage
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite struct DatabaseTests {
    private static func makeTable(_ database: Database) async throws {
        try await database.exclusive { db in try db.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, value TEXT NOT NULL)") }
    }

    private static func count(_ database: Database) async throws -> Int64 {
        try await database.read { db in try db.integer("SELECT count(*) FROM items") ?? 0 }
    }

    @Test func writesThatArriveTogetherCommitInOneTransactionAndEachIsToldItsOwnResult() async throws {
        try await withTemporaryDirectory { directory in
            let database = try Database(path: directory + "/group.db")
            try await Self.makeTable(database)
            // Hold the writer thread so that the writes queue up behind it.
            let hold = WriterHold()
            async let blocker: Void = database.exclusive { _ in hold.block() }
            await hold.started()
            let before = database.statistics
            let results = await withTaskGroup(of: (Int, Result<Int64, any Error>).self) { group in
                for index in 0..<50 {
                    group.addTask {
                        do {
                            let rowID = try await database.write { transaction in
                                let insert = try transaction.statement("INSERT INTO items(id, value) VALUES (?, ?)")
                                insert.bind(Int64(index), at: 1)
                                insert.bind("item \(index)", at: 2)
                                try insert.run()
                                // Every seventh write fails after its insert: only it is rolled back.
                                if index % 7 == 3 { throw Refused(index: index) }
                                return transaction.connection.lastInsertRowID
                            }
                            return (index, .success(rowID))
                        } catch {
                            return (index, .failure(error))
                        }
                    }
                }
                // All 50 are queued once the writer is free.
                while database.queuedWrites < 50 { try? await Task.sleep(for: .milliseconds(1)) }
                hold.release()
                return await group.reduce(into: [:]) { $0[$1.0] = $1.1 }
            }
            try await blocker
            let after = database.statistics
            #expect(after.writes - before.writes == 50)
            #expect(after.transactions - before.transactions == 1)
            #expect(after.largestGroup == 50)
            for (index, result) in results {
                if index % 7 == 3 {
                    #expect(throws: Refused(index: index)) { try result.get() }
                } else {
                    #expect(try result.get() == Int64(index))
                }
            }
            let refused = (0..<50).filter { $0 % 7 == 3 }.count
            #expect(try await Self.count(database) == Int64(50 - refused))
            await database.close()
        }
    }

    @Test func commitHooksRunInOrderAndRollbackHooksUndoOnlyTheFailedWrite() async throws {
        try await withTemporaryDirectory { directory in
            let database = try Database(path: directory + "/hooks.db")
            try await Self.makeTable(database)
            let log = NIOLockedValueBox<[String]>([])
            let hold = WriterHold()
            async let blocker: Void = database.exclusive { _ in hold.block() }
            await hold.started()
            async let first: Void = database.write { transaction in
                transaction.afterCommit { log.withLockedValue { $0.append("commit 1") } }
                transaction.afterRollback { log.withLockedValue { $0.append("rollback 1") } }
            }
            while database.queuedWrites < 1 { try await Task.sleep(for: .milliseconds(1)) }
            async let second: Void = database.write { transaction in
                transaction.afterCommit { log.withLockedValue { $0.append("commit 2") } }
                transaction.afterRollback { log.withLockedValue { $0.append("rollback 2") } }
                throw Refused(index: 2)
            }
            while database.queuedWrites < 2 { try await Task.sleep(for: .milliseconds(1)) }
            async let third: Void = database.write { transaction in
                transaction.afterCommit { log.withLockedValue { $0.append("commit 3") } }
            }
            while database.queuedWrites < 3 { try await Task.sleep(for: .milliseconds(1)) }
            hold.release()
            try await blocker
            try await first
            let secondResult: Result<Void, any Error>
            do { secondResult = .success(try await second) } catch { secondResult = .failure(error) }
            #expect(throws: Refused(index: 2)) { try secondResult.get() }
            try await third
            #expect(log.withLockedValue { $0 } == ["rollback 2", "commit 1", "commit 3"])
        }
    }

    @Test func aFullDiskRefusesWithAClearErrorAndLosesNothingCommitted() async throws {
        try await withTemporaryDirectory { directory in
            let database = try Database(configuration: DatabaseConfiguration(path: directory + "/small.db", maxSizeBytes: 128 * 1024))
            try await Self.makeTable(database)
            let big = String(repeating: "x", count: 4096)
            var stored = 0
            var failure: SQLiteError?
            for index in 0..<200 {
                do {
                    try await database.write { transaction in
                        let insert = try transaction.statement("INSERT INTO items(id, value) VALUES (?, ?)")
                        insert.bind(Int64(index), at: 1)
                        insert.bind(big, at: 2)
                        try insert.run()
                    }
                    stored += 1
                } catch let error as SQLiteError {
                    failure = error
                    break
                }
            }
            #expect(stored > 5 && stored < 200)
            #expect(failure?.isFull == true)
            #expect(failure?.description.contains("full") == true)
            #expect(try await Self.count(database) == Int64(stored))
            // Deleting still works, and makes room again.
            try await database.write { transaction in try transaction.execute("DELETE FROM items WHERE id < 5") }
            try await database.write { transaction in
                let insert = try transaction.statement("INSERT INTO items(id, value) VALUES (?, ?)")
                insert.bind(Int64(1_000), at: 1)
                insert.bind(big, at: 2)
                try insert.run()
            }
            #expect(try await Self.count(database) == Int64(stored - 5 + 1))
        }
    }

    @Test func filesAreCreatedForTheOwnerOnly() async throws {
        try await withTemporaryDirectory { directory in
            let path = directory + "/private/nested/state.db"
            let database = try Database(path: path)
            try await Self.makeTable(database)
            try await database.write { transaction in try transaction.execute("INSERT INTO items(value) VALUES ('secret')") }
            #expect(mode(of: directory + "/private") == 0o700)
            #expect(mode(of: directory + "/private/nested") == 0o700)
            #expect(mode(of: path) == 0o600)
            #expect(mode(of: path + "-wal") == 0o600)
            #expect(mode(of: path + "-shm") == 0o600)
            await database.close()
            // A file an earlier build left readable by others is narrowed when opened.
            chmod(path, 0o644)
            let reopened = try Database(path: path)
            #expect(mode(of: path) == 0o600)
            #expect(try await reopened.read { db in try db.integer("SELECT count(*) FROM items") } == 1)
        }
    }

    @Test func readsSeeOneSnapshotAndEveryFinishedWrite() async throws {
        try await withTemporaryDirectory { directory in
            let database = try Database(path: directory + "/reads.db")
            try await Self.makeTable(database)
            for index in 0..<20 {
                try await database.write { transaction in
                    let insert = try transaction.statement("INSERT INTO items(id, value) VALUES (?, 'v')")
                    insert.bind(Int64(index), at: 1)
                    try insert.run()
                }
                #expect(try await Self.count(database) == Int64(index + 1))
            }
            // A statement left on a row does not keep the read transaction (and its snapshot) open.
            _ = try await database.read { db in
                let rows = try db.statement("SELECT id FROM items ORDER BY id")
                return try rows.step()
            }
            try await database.write { transaction in try transaction.execute("INSERT INTO items(id, value) VALUES (100, 'late')") }
            #expect(try await Self.count(database) == 21)
        }
    }

    @Test func aClosedDatabaseRefusesWork() async throws {
        try await withTemporaryDirectory { directory in
            let database = try Database(path: directory + "/closed.db")
            try await Self.makeTable(database)
            await database.close()
            await #expect(throws: SQLiteError.self) { try await database.write { _ in } }
            await #expect(throws: SQLiteError.self) { try await database.read { _ in 1 } }
        }
    }

    @Test func theLinkedSQLiteIsThreadSafeAndAtLeast340() {
        #expect(SQLiteLibrary.versionNumber >= 3_040_000)
        #expect(SQLiteLibrary.isThreadSafe)
    }

    #if DEBUG
    /// The checks stop the process by default; here a recorder catches them instead (exit tests
    /// would fork, and their monitor thread disturbs the other tests' child processes).
    @Test func misuseOfSQLiteIsCaughtInDebugBuilds() async throws {
        try await withTemporaryDirectory { directory in
            let reports = NIOLockedValueBox<[String]>([])
            MisuseReport.install { message in reports.withLockedValue { $0.append(message) } }
            defer { MisuseReport.install(nil) }
            let database = try Database(path: directory + "/misuse.db")
            // A connection smuggled out of its closure and used from a Swift task.
            let escaped = try await database.read { db in UnsafeSendable(db) }
            _ = try? escaped.value.integer("SELECT 1")
            let offThread = reports.withLockedValue { $0 }
            #expect(!offThread.isEmpty && offThread.allSatisfy { $0.contains("SQLite reached off its database thread") }, "\(offThread)")
            // A blocking call from a Swift task.
            _ = try database.readBlocking { db in try db.integer("SELECT 1") }
            #expect(reports.withLockedValue { $0 }.count == offThread.count + 1)
            #expect(reports.withLockedValue { $0 }.last?.contains("called from a Swift task") == true)
            await database.close()
        }
    }
    #endif
}

/// Holds a database's writer thread until released, so that writes queue behind it.
final class WriterHold: Sendable {
    private let gate = ConditionLock(value: 0)

    /// Runs on the writer thread: says it started, then waits for ``release()``.
    func block() {
        gate.lock()
        gate.unlock(withValue: 1)
        gate.lock(whenValue: 2)
        gate.unlock()
    }

    /// Returns once ``block()`` runs.
    func started() async {
        while gate.value != 1 { try? await Task.sleep(for: .milliseconds(1)) }
    }

    func release() {
        gate.lock()
        gate.unlock(withValue: 2)
    }
}

/// Carries a value across concurrency domains in tests that break the rules on purpose.
struct UnsafeSendable<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}
