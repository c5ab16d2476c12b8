import CloudHub
import Foundation
import KubeModel
import Logging
import NIOCore
import Synchronization
import Transport

/// Keeps edge nodes holding the objects they should: given what every node should hold now,
/// it sends each node only what changed since it was last sent (new objects, newer content,
/// and deletes of objects it holds but should not), and has the ``SyncController`` record it.
///
/// One sender per controller: each owns the object kinds it sends (EdgeController pods,
/// ConfigMaps and Secrets; DeviceController devices), and only loads and compares records of
/// those kinds, so that controllers never delete each other's objects at the edge.
///
/// Objects go as `insert`/`update`/`delete` messages of `{namespace}/{kind}/{name}` on the
/// state lane with `state(key)` delivery: the channel persists them, and a node that was away
/// receives the latest version of each object (or its delete), not the history.
final class NodeObjectSender: Sendable {
    struct Counters: Sendable, Equatable {
        var objectsSent = 0
        var deletesSent = 0
        var failures = 0
    }

    private let hub: CloudHub
    private let sync: SyncController?
    private let kinds: Set<String>
    private let group: String
    private let source: String
    private let logger: Logger
    private let wake: @Sendable () -> Void
    private let retryPending = Atomic<Bool>(false)
    /// Asks ``run()`` to write the records of what was sent.
    private let recordRequests = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
    /// When the last send left records to write.
    private let lastChange = Mutex(ContinuousClock.now)
    /// Records wait until sending has been quiet this long (a burst of new pods is sent
    /// first, recorded after), but never longer than ``recordingDelayLimit``.
    static let recordingQuiet: Duration = .milliseconds(300)
    static let recordingDelayLimit: Duration = .seconds(5)
    /// Nodes whose batches are being sent at once.
    static let nodesAtOnce = 16

    private struct State {
        /// What each node was sent: object key → its uid and the digest of the content sent.
        var sent: [String: [EdgeObjectKey: SyncController.Record]] = [:]
        /// Whether ``sent`` holds the durable records yet (always, without a SyncController).
        var loaded = false
        /// Record changes the SyncController could not write yet, by node and object (the newest).
        var unrecorded: [String: SyncController.Change] = [:]
        var counters = Counters()
        /// Each object's fingerprint by key, with the resourceVersion it was computed for: an
        /// object is serialized and digested once per version, not once per pass.
        var fingerprints: [EdgeObjectKey: (version: String, fingerprint: String)] = [:]
    }
    private let state = Mutex(State())

    /// - Parameters:
    ///   - kinds: the ``EdgeObjectKey/kind``s this sender owns (`pod`, `configmap`, `device`).
    ///   - group: the messages' router group (`resource` for MetaManager, `twin` for DeviceTwin).
    ///   - wake: asks the owner to call ``send(_:)`` again (records to retry).
    init(hub: CloudHub, sync: SyncController?, kinds: Set<String>, group: String, source: String, logger: Logger,
         wake: @escaping @Sendable () -> Void) {
        self.hub = hub
        self.sync = sync
        self.kinds = kinds
        self.group = group
        self.source = source
        self.logger = logger
        self.wake = wake
    }

    var counters: Counters { state.withLock { $0.counters } }

    /// Sends every node what changed between `wanted` (node → key → object) and what it was
    /// sent, then records what was sent. Nodes missing from `wanted` are sent deletes of all
    /// they hold.
    func send(_ wanted: [String: [EdgeObjectKey: JSONValue]]) async {
        guard await loadRecords() else { return }
        let (sent, known) = state.withLock { ($0.sent, $0.fingerprints) }
        var fingerprints: [EdgeObjectKey: (version: String, fingerprint: String)] = [:]
        func fingerprint(_ key: EdgeObjectKey, _ object: JSONValue) -> String {
            guard let version = object[path: ["metadata", "resourceVersion"]]?.stringValue else { return SHA256.hex(Self.fingerprint(of: object)) }
            if let computed = fingerprints[key], computed.version == version { return computed.fingerprint }
            let digest = known[key].flatMap { $0.version == version ? $0.fingerprint : nil } ?? SHA256.hex(Self.fingerprint(of: object))
            fingerprints[key] = (version, digest)
            return digest
        }
        defer { state.withLock { $0.fingerprints = fingerprints } }
        typealias Outgoing = (key: EdgeObjectKey, message: Message, object: JSONValue?, fingerprint: String)
        var batches: [(node: String, messages: [Outgoing])] = []
        for node in Set(wanted.keys).union(sent.keys).sorted() {
            let want = wanted[node] ?? [:]
            let had = sent[node] ?? [:]
            var messages: [Outgoing] = []
            for (key, object) in want.sorted(by: { $0.key.resource < $1.key.resource }) {
                let fingerprint = fingerprint(key, object)
                guard had[key]?.fingerprint != fingerprint else { continue }
                let operation = had[key] == nil ? "insert" : "update"
                messages.append((key, message(operation, key, content: object.serialized), object, fingerprint))
            }
            for key in had.keys.sorted(by: { $0.resource < $1.resource }) where want[key] == nil {
                let deleted = #"{"metadata":{"name":"\#(key.name)","namespace":"\#(key.namespace)"}}"#
                messages.append((key, message("delete", key, content: deleted), nil, ""))
            }
            if !messages.isEmpty { batches.append((node, messages)) }
        }
        // One batch per node (one wait for the outbox commit that holds it), several nodes at
        // once: sent one message at a time, each waited for its own commit.
        var changes: [SyncController.Change] = []
        await withTaskGroup(of: (node: String, messages: [Outgoing], sent: Bool).self) { group in
            var pending = batches.makeIterator()
            func addNext() {
                guard let (node, messages) = pending.next() else { return }
                group.addTask { [hub, logger] in
                    do {
                        try await hub.send(contentsOf: messages.map(\.message), to: node, on: .state) { .state(key: $0.router.resource) }
                        return (node, messages, true)
                    } catch {
                        logger.warning("cannot send objects to a node", metadata: ["node": "\(node)", "objects": "\(messages.count)", "error": "\(error)"])
                        return (node, messages, false)
                    }
                }
            }
            for _ in 0..<Self.nodesAtOnce { addNext() }
            for await (node, messages, delivered) in group {
                addNext()
                guard delivered else {
                    state.withLock { $0.counters.failures += messages.count }
                    continue
                }
                let had = sent[node] ?? [:]
                state.withLock { state in
                    for (key, _, object, fingerprint) in messages {
                        let uid = object?[path: ["metadata", "uid"]]?.stringValue ?? ""
                        state.sent[node, default: [:]][key] = object == nil ? nil : SyncController.Record(uid: uid, fingerprint: fingerprint)
                        if object == nil { state.counters.deletesSent += 1 } else { state.counters.objectsSent += 1 }
                    }
                }
                for (key, _, object, fingerprint) in messages {
                    changes.append(SyncController.Change(node: node, key: key, object: object, fingerprint: fingerprint, previous: had[key]))
                }
            }
        }
        // Recorded beside the sending, not before the next send: a thousand new pods meant two
        // thousand ObjectSync writes, and the pods created meanwhile waited for them.
        guard sync != nil, !changes.isEmpty else { return }
        state.withLock { state in
            for change in changes { state.unrecorded["\(change.node) \(change.key.resource)"] = change }
        }
        lastChange.withLock { $0 = .now }
        recordRequests.continuation.yield()
    }

    /// What decides whether a node needs an object again: the object without its status, its
    /// resourceVersion and managed fields. Status, which the edge itself reported, is not
    /// echoed back to it.
    static func fingerprint(of object: JSONValue) -> String {
        var trimmed = object
        trimmed.set(nil, at: ["status"])
        trimmed.set(nil, at: ["metadata", "resourceVersion"])
        trimmed.set(nil, at: ["metadata", "managedFields"])
        return trimmed.serialized
    }

    private func message(_ operation: String, _ key: EdgeObjectKey, content: String) -> Message {
        Message(router: MessageRouter(source: source, group: group, operation: operation, resource: key.resource),
                content: ByteBuffer(string: content))
    }

    /// Loads what every node was sent (of this sender's kinds) from the SyncController's
    /// records, once; `false` (after scheduling another try) when they cannot be read: sending
    /// before would resend everything and miss deletes.
    private func loadRecords() async -> Bool {
        guard let sync, !state.withLock({ $0.loaded }) else { return true }
        do {
            var records = try await sync.load()
            for node in records.keys {
                records[node] = records[node]?.filter { kinds.contains($0.key.kind) }
            }
            state.withLock { state in
                state.sent = records.filter { !$0.value.isEmpty }
                state.loaded = true
            }
            logger.info("loaded what the nodes were sent", metadata: ["nodes": "\(records.count)", "objects": "\(records.values.map(\.count).reduce(0, +))"])
            return true
        } catch {
            state.withLock { $0.counters.failures += 1 }
            logger.warning("cannot read the ObjectSync records; trying again", metadata: ["error": "\(error)"])
            retryLater()
            return false
        }
    }

    /// Writes the records of what was sent and not recorded yet (the newest change of each
    /// object), keeping failures to try again; `false` when some failed.
    private func recordPending() async -> Bool {
        guard let sync else { return true }
        let pending = state.withLock { state in
            defer { state.unrecorded = [:] }
            return state.unrecorded
        }
        guard !pending.isEmpty else { return true }
        let failed = await sync.record(Array(pending.values))
        guard !failed.isEmpty else { return true }
        state.withLock { state in
            // A newer change of the object, sent meanwhile, replaces the failed one.
            for change in failed where state.unrecorded["\(change.node) \(change.key.resource)"] == nil {
                state.unrecorded["\(change.node) \(change.key.resource)"] = change
            }
        }
        return false
    }

    /// Asks ``run()`` to wake the owner again in a second.
    private func retryLater() {
        retryPending.store(true, ordering: .relaxed)
    }

    /// The sender's background work, which the owner runs in its task group until cancelled:
    /// writes the records of what was sent (again a second after a failure), and wakes the
    /// owner a second after the records could not be loaded.
    func run() async {
        await withDiscardingTaskGroup { children in
            children.addTask { [self] in
                for await _ in recordRequests.stream {
                    // The records only spare a restarted cloudcore resending what the nodes
                    // hold; while a burst is being sent, its writes would slow the burst.
                    let first = ContinuousClock.now
                    while ContinuousClock.now - first < Self.recordingDelayLimit {
                        let quietFor = ContinuousClock.now - lastChange.withLock { $0 }
                        if quietFor >= Self.recordingQuiet { break }
                        guard (try? await Task.sleep(for: Self.recordingQuiet - quietFor)) != nil else { return }
                    }
                    while await !recordPending() {
                        guard (try? await Task.sleep(for: .seconds(1))) != nil else { return }
                    }
                }
            }
            children.addTask { [self] in
                while (try? await Task.sleep(for: .seconds(1))) != nil {
                    if retryPending.exchange(false, ordering: .relaxed) { wake() }
                }
                recordRequests.continuation.finish()
            }
        }
    }
}
