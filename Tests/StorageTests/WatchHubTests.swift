import Storage
import Synchronization
import Testing

/// A change for the hub tests: a revision and the "resource" it belongs to.
struct Change: RevisionedEvent, Equatable {
    var revision: Int64
    var resource: String
}

/// A persisted history the hub reads older changes from, counting its reads.
final class History: Sendable {
    let changes = Mutex<[Change]>([])
    let reads = Atomic<Int>(0)

    func load(after: Int64, through: Int64, resource: String) -> [Change] {
        reads.add(1, ordering: .relaxed)
        return changes.withLock { $0.filter { $0.revision > after && $0.revision <= through && $0.resource == resource } }
    }
}

@Suite struct WatchHubTests {
    private static func makeHub(memory: Int = 100, buffer: Int = 100, history: History? = nil) -> WatchHub<Change, String> {
        WatchHub(
            revision: 0, compacted: 0, configuration: WatchHubConfiguration(memoryHistory: memory, watcherBuffer: buffer),
            matches: { change, resource in change.resource == resource },
            history: history.map { history in { @Sendable after, through, resource in history.load(after: after, through: through, resource: resource) } })
    }

    /// Publishes `count` changes after the hub's revision, alternating two resources, and records
    /// them in `history` as a store would (before publishing).
    private static func publish(_ count: Int, on hub: WatchHub<Change, String>, history: History? = nil) {
        let start = hub.revision
        let changes = (1...Int64(count)).map { Change(revision: start + $0, resource: $0 % 2 == 0 ? "pods" : "nodes") }
        history?.changes.withLock { $0 += changes }
        hub.publish(changes)
    }

    private static func take(_ count: Int, from stream: AsyncStream<Change>) async -> [Int64] {
        var iterator = stream.makeAsyncIterator()
        var seen: [Int64] = []
        while seen.count < count, let change = await iterator.next() { seen.append(change.revision) }
        return seen
    }

    @Test func watchersSeeTheirChangesInRevisionOrder() async throws {
        let hub = Self.makeHub()
        let pods = try await hub.watch("pods", after: 0)
        let nodes = try await hub.watch("nodes", after: 0)
        Self.publish(10, on: hub)
        #expect(await Self.take(5, from: pods) == [2, 4, 6, 8, 10])
        #expect(await Self.take(5, from: nodes) == [1, 3, 5, 7, 9])
        #expect(hub.revision == 10)
    }

    @Test func aWatchResumesFromMemoryThenFromTheStoresHistory() async throws {
        let history = History()
        let hub = Self.makeHub(memory: 4, history: history)
        Self.publish(20, on: hub, history: history)
        // Revisions 17–20 are in memory: a watch after 16 reads nothing.
        let recent = try await hub.watch("pods", after: 16)
        #expect(await Self.take(2, from: recent) == [18, 20])
        #expect(history.reads.load(ordering: .relaxed) == 0)
        // From 3: the history, then what is published meanwhile, in order and without a gap.
        let old = try await hub.watch("pods", after: 3)
        #expect(history.reads.load(ordering: .relaxed) == 1)
        Self.publish(4, on: hub, history: history)
        #expect(await Self.take(11, from: old) == [4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24])
        #expect(await Self.take(2, from: recent) == [22, 24])
        // A revision the list read ahead of what was published: only later changes.
        let ahead = try await hub.watch("pods", after: 26)
        Self.publish(4, on: hub, history: history)
        #expect(await Self.take(1, from: ahead) == [28])
    }

    @Test func aRevisionOlderThanCompactionIsTooOld() async throws {
        let history = History()
        let hub = Self.makeHub(memory: 2, history: history)
        Self.publish(10, on: hub, history: history)
        hub.compact(through: 6)
        #expect(hub.compactedRevision == 6)
        await #expect(throws: WatchHubError.tooOld(requested: 5, compacted: 6)) { try await hub.watch("pods", after: 5) }
        let resumed = try await hub.watch("pods", after: 6)
        #expect(await Self.take(2, from: resumed) == [8, 10])
        #expect(WatchHubError.tooOld(requested: 5, compacted: 6).description == "too old resource version: 5 (6)")
        // Without a persisted history, memory is all there is.
        let memoryOnly = Self.makeHub(memory: 2)
        Self.publish(10, on: memoryOnly)
        await #expect(throws: WatchHubError.tooOld(requested: 3, compacted: 8)) { try await memoryOnly.watch("pods", after: 3) }
    }

    @Test func aSlowWatcherIsEvictedWithoutHoldingUpWritersOrOtherWatchers() async throws {
        let hub = Self.makeHub(memory: 10, buffer: 5)
        let slow = try await hub.watch("pods", after: 0)
        let fast = try await hub.watch("pods", after: 0)
        var fastIterator = fast.makeAsyncIterator()
        var fastSeen: [Int64] = []
        for _ in 0..<20 {
            Self.publish(2, on: hub)  // one pod change each time
            if let change = await fastIterator.next() { fastSeen.append(change.revision) }
        }
        #expect(fastSeen == (1...20).map { Int64($0 * 2) })
        // (Required: a slow watcher left in place would make the loop below wait for ever.)
        try #require(hub.watcherCount == 1, "the slow watcher was not evicted")
        // The slow watcher got what its buffer held, then its stream ended.
        var slowSeen: [Int64] = []
        for await change in slow { slowSeen.append(change.revision) }
        #expect(slowSeen == [2, 4, 6, 8, 10])
        // Bookmarks reach the watchers still live.
        hub.broadcast { resource, revision in Change(revision: revision, resource: resource) }
        #expect(await fastIterator.next() == Change(revision: 40, resource: "pods"))
    }

    @Test func aWatcherThatStopsIsRemoved() async throws {
        let hub = Self.makeHub()
        do {
            let stream = try await hub.watch("pods", after: 0)
            #expect(hub.watcherCount == 1)
            let consumer = Task { for await _ in stream {} }
            consumer.cancel()
            await consumer.value
        }
        #expect(hub.watcherCount == 0)
    }
}
