import Synchronization

/// A write queued with ``Database/startWrite(_:)``: its place in the writer's order is taken
/// at once, its result awaited later, so a caller can prepare the next write meanwhile. The
/// database always answers (a closed one with an error), so the wait is bounded by the commit
/// and is not cut short by cancellation: what was committed must still be reported.
public final class PendingWrite<Value: Sendable>: Sendable {
    private struct State {
        var result: Result<Value, any Error>?
        var waiter: CheckedContinuation<Result<Value, any Error>, Never>?
    }

    private let state = Mutex(State())

    init() {}

    func complete(_ result: Result<Value, any Error>) {
        let waiter = state.withLock { state in
            state.result = result
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume(returning: result)
    }

    /// What the write's body returned once the transaction committed; what it (or the commit)
    /// threw otherwise.
    public func value() async throws -> Value {
        let result = await withCheckedContinuation { (continuation: CheckedContinuation<Result<Value, any Error>, Never>) in
            let done = state.withLock { state -> Result<Value, any Error>? in
                if let result = state.result { return result }
                state.waiter = continuation
                return nil
            }
            if let done { continuation.resume(returning: done) }
        }
        return try result.get()
    }
}
