import Synchronization

/// A limit on the requests a connection pool has in flight at once: past it, a request waits
/// (first come, first served) for one to finish, instead of opening one more connection. A
/// controller creating 500 pods at once otherwise opened hundreds of connections, each with
/// its own TLS handshake, and closed most of them straight after.
final class ConnectionSlots: Sendable {
    let limit: Int
    private struct State {
        var inUse = 0
        var waiters: [(id: UInt64, continuation: CheckedContinuation<Void, any Error>)] = []
        var nextID: UInt64 = 0
        /// Waiters given an id and not yet queued, and whether each was cancelled meanwhile.
        var arriving: [UInt64: Bool] = [:]
    }
    private let state = Mutex(State())

    init(limit: Int) {
        precondition(limit >= 1, "a pool needs at least one connection")
        self.limit = limit
    }

    /// Requests in flight now, and waiting for a slot.
    var counts: (inUse: Int, waiting: Int) { state.withLock { ($0.inUse, $0.waiters.count) } }

    /// Takes a slot, waiting for one if all are taken; throws `CancellationError` if the task
    /// is cancelled while waiting. Every successful call is paired with ``release()``.
    func acquire() async throws {
        let id = state.withLock { state -> UInt64? in
            if state.inUse < limit, state.waiters.isEmpty {
                state.inUse += 1
                return nil
            }
            defer { state.nextID += 1 }
            state.arriving[state.nextID] = false
            return state.nextID
        }
        guard let id else { return }
        enum Outcome { case queued, acquired, cancelled }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let outcome = state.withLock { state -> Outcome in
                    if state.arriving.removeValue(forKey: id) == true { return .cancelled }
                    // A slot may have come free since the check above.
                    if state.inUse < limit, state.waiters.isEmpty {
                        state.inUse += 1
                        return .acquired
                    }
                    state.waiters.append((id, continuation))
                    return .queued
                }
                switch outcome {
                case .queued: break
                case .acquired: continuation.resume()
                case .cancelled: continuation.resume(throwing: CancellationError())
                }
            }
        } onCancel: {
            let waiter = state.withLock { state -> CheckedContinuation<Void, any Error>? in
                if state.arriving[id] != nil {
                    state.arriving[id] = true
                    return nil
                }
                guard let index = state.waiters.firstIndex(where: { $0.id == id }) else { return nil }
                return state.waiters.remove(at: index).continuation
            }
            waiter?.resume(throwing: CancellationError())
        }
    }

    /// Gives the slot to the longest waiter, or frees it.
    func release() {
        let next = state.withLock { state -> CheckedContinuation<Void, any Error>? in
            guard !state.waiters.isEmpty else {
                state.inUse -= 1
                return nil
            }
            return state.waiters.removeFirst().continuation
        }
        next?.resume()
    }
}
