import NIOPosix

/// One dedicated thread and the connection that lives on it: every job submitted runs there,
/// in order, with the connection (or `nil` once the worker is closed).
final class DatabaseWorker: Sendable {
    private let pool: NIOThreadPool
    private let slot: ConnectionSlot

    /// Starts the thread and opens the connection on it with `open`; throws what `open` threw.
    init(open: @escaping @Sendable () throws(SQLiteError) -> DatabaseConnection) throws(SQLiteError) {
        pool = NIOThreadPool(numberOfThreads: 1)
        pool.start()
        let slot = ConnectionSlot()
        self.slot = slot
        let opened = BlockingResult<Void>()
        pool.submit { _ in
            do throws(SQLiteError) {
                slot.connection = try open()
                opened.set(.success(()))
            } catch {
                opened.set(.failure(error))
            }
        }
        if case .failure(let error) = opened.wait() {
            pool.shutdownGracefully { _ in }
            throw error as! SQLiteError
        }
    }

    /// Runs `job` on the worker's thread with its connection (`nil` once closed).
    func submit(_ job: @escaping @Sendable (DatabaseConnection?) -> Void) {
        let slot = slot
        pool.submit { state in
            guard case .active = state else { return job(nil) }
            job(slot.connection)
        }
    }

    /// Closes the connection on its thread after the jobs already submitted, then ends the thread.
    func close() async {
        let slot = slot
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            pool.submit { _ in
                slot.connection = nil
                continuation.resume()
            }
        }
        try? await pool.shutdownGracefully()
    }

    /// Ends the thread; the connection closes when the last job that holds it is gone (jobs
    /// not yet run are called without it).
    deinit {
        pool.shutdownGracefully { _ in }
    }
}

/// The connection of a worker: read and written only on the worker's thread.
private final class ConnectionSlot: @unchecked Sendable {
    var connection: DatabaseConnection?
}
