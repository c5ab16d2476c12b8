import NIOCore
import Synchronization
import Transport

/// The node lanes that hold messages, served round-robin one message at a time, so a node that
/// floods the hub gets its turn like every other node and never delays them. Messages wait in
/// their node's channel (whose credit then stops the node) until the hub's reader takes them.
final class InboundQueue: Sendable {
    private struct Key: Hashable {
        let session: ObjectIdentifier
        let lane: UInt8
    }

    private enum Readiness {
        /// In the ready ring.
        case queued
        /// Taken by a reader that is polling it; `rearm` if more arrived meanwhile.
        case polling(rearm: Bool)
    }

    private struct State {
        var ready = CircularBuffer<(NodeSession, Lane)>(initialCapacity: 64)
        var readiness: [Key: Readiness] = [:]
        var waiters: [(id: Int, continuation: UnsafeContinuation<Void, Never>)] = []
        var nextWaiter = 0
        var closed = false
    }

    private let state = Mutex(State())

    /// `lane` of `session` has messages (the channel's observer says so).
    func markReady(_ session: NodeSession, lane: Lane) {
        let key = Key(session: ObjectIdentifier(session), lane: lane.rawValue)
        let waiter: UnsafeContinuation<Void, Never>? = state.withLock { state in
            switch state.readiness[key] {
            case .queued?:
                return nil
            case .polling?:
                state.readiness[key] = .polling(rearm: true)
                return nil
            case nil:
                state.readiness[key] = .queued
                state.ready.append((session, lane))
                return state.waiters.popLast()?.continuation
            }
        }
        waiter?.resume()
    }

    /// The next message from any node, in round-robin order over node lanes; `nil` once closed
    /// or when the reading task is cancelled.
    func next() async -> (NodeSession, Lane, Message)? {
        while !Task.isCancelled {
            let taken: (NodeSession, Lane)?? = state.withLock { state in
                if state.closed { return .some(nil) }
                guard let entry = state.ready.popFirst() else { return nil }
                state.readiness[Key(session: ObjectIdentifier(entry.0), lane: entry.1.rawValue)] = .polling(rearm: false)
                return .some(entry)
            }
            switch taken {
            case .some(nil):
                return nil
            case .some(let (session, lane))?:
                let message = session.channel.pollMessage(on: lane)
                let key = Key(session: ObjectIdentifier(session), lane: lane.rawValue)
                let waiter: UnsafeContinuation<Void, Never>? = state.withLock { state in
                    guard case .polling(let rearm)? = state.readiness[key] else { return nil }
                    if message != nil || rearm {
                        state.readiness[key] = .queued
                        state.ready.append((session, lane))
                        // Another reader may take the rest while this one hands its message on.
                        return state.waiters.popLast()?.continuation
                    }
                    state.readiness[key] = nil
                    return nil
                }
                waiter?.resume()
                if let message { return (session, lane, message) }
            case nil:
                let id = state.withLock { state in
                    defer { state.nextWaiter += 1 }
                    return state.nextWaiter
                }
                await withTaskCancellationHandler {
                    await withUnsafeContinuation { (continuation: UnsafeContinuation<Void, Never>) in
                        let resumeNow = state.withLock { state in
                            if state.closed || !state.ready.isEmpty || Task.isCancelled { return true }
                            state.waiters.append((id, continuation))
                            return false
                        }
                        if resumeNow { continuation.resume() }
                    }
                } onCancel: {
                    let waiter = state.withLock { state -> UnsafeContinuation<Void, Never>? in
                        guard let index = state.waiters.firstIndex(where: { $0.id == id }) else { return nil }
                        return state.waiters.remove(at: index).continuation
                    }
                    waiter?.resume()
                }
            }
        }
        return nil
    }

    /// How many node lanes wait in the ready ring (tests).
    var readyLaneCount: Int { state.withLock { $0.ready.count } }

    /// Ends every reader.
    func close() {
        let waiters = state.withLock { state in
            state.closed = true
            defer { state.waiters = [] }
            return state.waiters.map(\.continuation)
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Forgets a session's lanes (the session is being removed).
    func remove(_ session: NodeSession) {
        let identifier = ObjectIdentifier(session)
        state.withLock { state in
            state.readiness = state.readiness.filter { $0.key.session != identifier }
            state.ready.removeAll { $0.0 === session }
        }
    }
}
