import Synchronization

/// An async counting semaphore: at most `limit` holders; others wait in arrival order.
final class QuerySlots: Sendable {
    private struct State {
        var available: Int
        var waiters: [CheckedContinuation<Void, Never>] = []
    }

    private let state: Mutex<State>

    init(limit: Int) {
        state = Mutex(State(available: max(1, limit)))
    }

    /// Waits for a slot; release it with ``Slot/release()``.
    func acquire() async -> Slot {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let granted = state.withLock { state in
                if state.available > 0 {
                    state.available -= 1
                    return true
                }
                state.waiters.append(continuation)
                return false
            }
            if granted { continuation.resume() }
        }
        return Slot(owner: self)
    }

    fileprivate func release() {
        let next = state.withLock { state -> CheckedContinuation<Void, Never>? in
            if state.waiters.isEmpty {
                state.available += 1
                return nil
            }
            return state.waiters.removeFirst()
        }
        next?.resume()
    }

    /// One held slot.
    struct Slot: Sendable {
        fileprivate let owner: QuerySlots
        func release() { owner.release() }
    }
}
