import Synchronization

/// Handles what the edges send up (pod and node statuses, events, device reports) several at a
/// time, while each node's messages are handled one after another in the order they arrived:
/// a pod's `Running` never overtakes its `Pending`, and one node's burst does not stop the
/// others. Each message is one request to the API server; handled one at a time, a thousand
/// pods becoming Running took seconds to reach the API.
///
/// At most `width` nodes are served at once, and at most `maxQueued` messages wait behind
/// their node's current one; past either, reading stops, so the hub's credit holds the rest
/// back at the edges instead of memory here.
public enum UpstreamWorkers {
    /// Runs `handle` for every element of `messages` until the sequence ends (then waits for
    /// what is in hand), with the ordering and bounds above; `key` names an element's node.
    public static func run<Messages: AsyncSequence & Sendable>(
        _ messages: Messages, width: Int, maxQueued: Int, key: @escaping @Sendable (Messages.Element) -> String,
        handle: @escaping @Sendable (Messages.Element) async -> Void
    ) async where Messages.Element: Sendable {
        precondition(width >= 1 && maxQueued >= 0, "width must be at least 1 and maxQueued not negative")
        let queues = Queues<Messages.Element>()
        await withDiscardingTaskGroup { workers in
            // Finished workers report here, so the reader knows when a place is free again.
            let (finished, finishing) = AsyncStream<Void>.makeStream()
            var finishedIterator = finished.makeAsyncIterator()
            var active = 0
            do {
                for try await message in messages {
                    let node = key(message)
                    if queues.enqueueBehind(node, message) {
                        // Its node is being served: the worker takes it after the current one.
                        while queues.queuedCount > maxQueued, active > 0 {
                            _ = await finishedIterator.next()
                            active -= 1
                        }
                        continue
                    }
                    while active >= width {
                        _ = await finishedIterator.next()
                        active -= 1
                    }
                    active += 1
                    workers.addTask {
                        var next: Messages.Element? = message
                        while let current = next {
                            await handle(current)
                            next = queues.dequeue(node)
                        }
                        finishing.yield()
                    }
                }
            } catch {
                // The sequence failed: what was taken is still handled below.
            }
            finishing.finish()
        }
    }

    /// The messages waiting behind each node being served; a node present has a worker.
    private final class Queues<Element: Sendable>: Sendable {
        private struct State {
            var waiting: [String: [Element]] = [:]
            var count = 0
        }
        private let state = Mutex(State())

        var queuedCount: Int { state.withLock { $0.count } }

        /// Queues `element` behind its node's current message when the node is being served
        /// (`true`); otherwise marks the node served and returns `false` (the caller serves it).
        func enqueueBehind(_ node: String, _ element: Element) -> Bool {
            state.withLock { state in
                guard state.waiting[node] != nil else {
                    state.waiting[node] = []
                    return false
                }
                state.waiting[node]!.append(element)
                state.count += 1
                return true
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
