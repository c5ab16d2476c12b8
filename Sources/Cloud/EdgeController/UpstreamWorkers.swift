import Synchronization

/// Handles what the edges send up (pod and node statuses, events, device reports) several at a
/// time, while each node's messages are handled one after another in the order they arrived:
/// a pod's `Running` never overtakes its `Pending`, and one node's burst does not stop the
/// others. Each message is one request to the API server; handled one at a time, a thousand
/// pods becoming Running took seconds to reach the API.
///
/// At most `width` nodes are served at once, at most `maxQueuedPerNode` messages wait behind a
/// node's current one, and at most `maxQueued` in all. Past a bound, reading waits for the
/// next message handled anywhere, holding the one it took: the hub's round-robin reader then
/// reaches a flooding node once per turn like any other, and its credit holds the rest back
/// at the edges instead of memory here.
public enum UpstreamWorkers {
    /// Runs `handle` for every element of `messages` until the sequence ends (then waits for
    /// what is in hand), with the ordering and bounds above; `key` names an element's node.
    public static func run<Messages: AsyncSequence & Sendable>(
        _ messages: Messages, width: Int, maxQueuedPerNode: Int, maxQueued: Int, key: @escaping @Sendable (Messages.Element) -> String,
        handle: @escaping @Sendable (Messages.Element) async -> Void
    ) async where Messages.Element: Sendable {
        precondition(width >= 1 && maxQueuedPerNode >= 0 && maxQueued >= 0, "width must be at least 1 and the bounds not negative")
        let queues = Queues<Messages.Element>(width: width, perNode: maxQueuedPerNode, total: maxQueued)
        // Every message handled signals here; a reader waiting on a bound checks again.
        let (progress, signal) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        await withDiscardingTaskGroup { workers in
            var progressed = progress.makeAsyncIterator()
            do {
                for try await message in messages {
                    let node = key(message)
                    admission: while true {
                        switch queues.admit(node, message) {
                        case .queued:
                            break admission
                        case .serve:
                            workers.addTask {
                                var next: Messages.Element? = message
                                while let current = next {
                                    await handle(current)
                                    next = queues.dequeue(node)
                                    signal.yield()
                                }
                            }
                            break admission
                        case .wait:
                            _ = await progressed.next()
                        }
                    }
                }
            } catch {
                // The sequence failed: what was taken is still handled.
            }
        }
        signal.finish()
    }

    /// The messages waiting behind each node being served; a node present has a worker.
    private final class Queues<Element: Sendable>: Sendable {
        enum Admission { case serve, queued, wait }
        private struct State {
            var waiting: [String: [Element]] = [:]
            var count = 0
        }
        private let state = Mutex(State())
        private let width: Int
        private let perNode: Int
        private let total: Int

        init(width: Int, perNode: Int, total: Int) {
            self.width = width
            self.perNode = perNode
            self.total = total
        }

        /// Queues `element` behind its node's current message (`.queued`), or marks the node
        /// served (`.serve`: the caller serves it), or neither while a bound is reached (`.wait`).
        func admit(_ node: String, _ element: Element) -> Admission {
            state.withLock { state in
                if let queue = state.waiting[node] {
                    guard queue.count < perNode, state.count < total else { return .wait }
                    state.waiting[node]!.append(element)
                    state.count += 1
                    return .queued
                }
                guard state.waiting.count < width else { return .wait }
                state.waiting[node] = []
                return .serve
            }
        }

        /// The node's next message, or `nil` after marking the node no longer served.
        func dequeue(_ node: String) -> Element? {
            state.withLock { state in
                guard state.waiting[node]?.isEmpty == false else {
                    state.waiting[node] = nil
                    return nil
                }
                state.count -= 1
                return state.waiting[node]!.removeFirst()
            }
        }
    }
}
