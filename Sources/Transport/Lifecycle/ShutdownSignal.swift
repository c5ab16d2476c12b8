import Synchronization

/// A one-way "stop now" a long-running part's `run()` waits for: triggered from a graceful
/// shutdown handler (which cannot await) or by cancellation, it lets the part do its async
/// clean-up inside its own task group before its children end.
public final class ShutdownSignal: Sendable {
    private struct State {
        var triggered = false
        var waiters: [Int: UnsafeContinuation<Void, Never>] = [:]
        var nextID = 0
    }

    private let state = Mutex(State())

    /// Creates an untriggered signal.
    public init() {}

    /// Triggers the signal (again: no effect) and wakes every waiter.
    public func trigger() {
        let waiters = state.withLock { state in
            state.triggered = true
            defer { state.waiters = [:] }
            return Array(state.waiters.values)
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Whether ``trigger()`` was called.
    public var isTriggered: Bool { state.withLock { $0.triggered } }

    /// Returns once the signal is triggered or the waiting task is cancelled.
    public func wait() async {
        let id = state.withLock { state in
            defer { state.nextID += 1 }
            return state.nextID
        }
        await withTaskCancellationHandler {
            await withUnsafeContinuation { (continuation: UnsafeContinuation<Void, Never>) in
                let done = state.withLock { state in
                    if state.triggered || Task.isCancelled { return true }
                    state.waiters[id] = continuation
                    return false
                }
                if done { continuation.resume() }
            }
        } onCancel: {
            state.withLock { $0.waiters.removeValue(forKey: id) }?.resume()
        }
    }
}
