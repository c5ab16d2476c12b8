import Synchronization

/// The outcome of writes handed to ``MetaStore/submit(_:)``, awaited once they committed or
/// failed. The database always answers (a closed one with an error), so the wait is bounded by
/// the commit and is not cut short by cancellation: what is committed must still be reported.
public final class PendingMetaWrites: Sendable {
    private struct State {
        var result: Result<[MetaWriteOutcome], MetaError>?
        var waiter: CheckedContinuation<Result<[MetaWriteOutcome], MetaError>, Never>?
    }

    private let state = Mutex(State())

    init() {}

    func complete(_ result: Result<[MetaWriteOutcome], MetaError>) {
        let waiter = state.withLock { state in
            state.result = result
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume(returning: result)
    }

    /// Each write's outcome, in order, once the transaction committed; the store's error if it
    /// did not.
    public func outcomes() async throws(MetaError) -> [MetaWriteOutcome] {
        let result = await withCheckedContinuation { (continuation: CheckedContinuation<Result<[MetaWriteOutcome], MetaError>, Never>) in
            let done = state.withLock { state -> Result<[MetaWriteOutcome], MetaError>? in
                if let result = state.result { return result }
                state.waiter = continuation
                return nil
            }
            if let done { continuation.resume(returning: done) }
        }
        return try result.get()
    }
}
