import Foundation
import KubeModel
import Logging
import ServiceLifecycle
import Synchronization

/// The scheduler of the embedded control plane (kube-scheduler's part, in cloudcore): binds
/// each pending pod (no `spec.nodeName`, `schedulerName` `default-scheduler`, not being deleted)
/// to the best node that passes ``SchedulingFilters`` through `pods/binding`. A pod that fits
/// nowhere gets `PodScheduled=False` (`Unschedulable`, "0/N nodes are available: …") and a
/// `FailedScheduling` event, and is tried again when a node or a pod changes. Against a real
/// cluster kube-scheduler does this, and this does not run.
public final class PodScheduler: Service, Sendable {
    public static let schedulerName = "default-scheduler"
    /// The user it acts as on the embedded API server (bound to kube's `system:kube-scheduler` role).
    public static let user = BootstrapPolicy.schedulerUser

    /// What it counted.
    public struct Counters: Sendable, Equatable {
        public var bound = 0
        public var unschedulable = 0
        public var failures = 0
    }

    private let client: KubeClient
    private let pods: Informer
    private let nodes: Informer
    private let events: EventRecorder
    private let filters = SchedulingFilters()
    private let logger: Logger
    private struct State {
        var counters = Counters()
        /// The last unschedulable message reported per pod.
        var reported: [String: String] = [:]
        /// Pods decided and being bound (or bound and not yet seen so), by uid, with their node.
        var assumed: [String: (node: String, at: ContinuousClock.Instant)] = [:]
        /// Nodes and placed pods parsed by the last pass.
        var parsed = SchedulingCache()
    }
    private let state = Mutex(State())

    public init(client: KubeClient, logger: Logger = Logger(label: "scheduler")) {
        self.client = client
        self.logger = logger
        pods = Informer(client: client, resource: APIResource(Kube.Pod.self))
        nodes = Informer(client: client, resource: APIResource(Kube.Node.self))
        events = EventRecorder(client: client, component: Self.schedulerName)
    }

    public var counters: Counters { state.withLock { $0.counters } }

    /// Runs the informers and schedules on every change until graceful shutdown or cancellation.
    public func run() async {
        await withDiscardingTaskGroup { children in
            children.addTask { [self] in
                // Events are written beside the scheduling, as kube's event broadcaster writes them.
                for await event in scheduledEvents.stream {
                    try? await events.record(event.pod, type: "Normal", reason: "Scheduled", message: event.message)
                }
            }
            await InformerDriven.run([.init(pods) { $0.changesPodPlacement }, .init(nodes) { $0.changesNodePlacement }]) { [self] () async -> Duration? in
                await schedulePending()
                return nil
            }
            scheduledEvents.continuation.finish()
        }
    }

    /// `Scheduled` events waiting to be written; the oldest are dropped past 1,000 (kube's
    /// broadcaster drops too when its queue is full).
    private let scheduledEvents = AsyncStream<(pod: JSONValue, message: String)>.makeStream(bufferingPolicy: .bufferingNewest(1000))

    /// Bindings in flight at once (kube-scheduler binds asynchronously too, while it goes on
    /// deciding for the next pod).
    static let bindingsInFlight = 32

    /// One pass: every pending pod, oldest first, against the nodes as they are now (each
    /// decision counted in the usage the next pod sees). As kube-scheduler does, a pod is
    /// assumed on its node at once and bound meanwhile, and on large clusters only enough
    /// feasible nodes are scored (`percentageOfNodesToScore`'s adaptive default), starting
    /// where the previous pod stopped.
    public func schedulePending() async {
        let now = ContinuousClock.now
        let assumed = state.withLock { state in
            state.assumed = state.assumed.filter { now - $0.value.at < .seconds(30) }
            return state.assumed
        }
        // First only which pods wait and which hold a place: most passes (a pod bound, one
        // finished) find none waiting and stop here.
        var holding: [(pod: JSONValue, node: String)] = []
        var pending: [JSONValue] = []
        var boundSeen: [String] = []
        for pod in pods.objects {
            let uid = pod[path: ["metadata", "uid"]]?.stringValue ?? ""
            if let node = pod[path: ["spec", "nodeName"]]?.stringValue, !node.isEmpty {
                if assumed[uid] != nil { boundSeen.append(uid) }
                let phase = pod[path: ["status", "phase"]]?.stringValue
                guard phase != "Succeeded", phase != "Failed" else { continue }
                holding.append((pod, node))
            } else if let assumption = assumed[uid] {
                holding.append((pod, assumption.node))
            } else if pod[path: ["metadata", "deletionTimestamp"]] == nil,
                      (pod[path: ["spec", "schedulerName"]]?.stringValue ?? Self.schedulerName) == Self.schedulerName {
                pending.append(pod)
            }
        }
        if !boundSeen.isEmpty { state.withLock { state in for uid in boundSeen { state.assumed[uid] = nil } } }
        guard !pending.isEmpty else { return }

        var parsed = state.withLock { $0.parsed }
        let nodeList = nodes.objects.map { parsed.node($0) }.sorted { $0.name < $1.name }
        let nodeIndex = Dictionary(nodeList.enumerated().map { ($0.element.name, $0.offset) }, uniquingKeysWith: { first, _ in first })
        var usage = [SchedulingFilters.Usage](repeating: SchedulingFilters.Usage(), count: nodeList.count)
        var placed: [(namespace: String, labels: [String: String], node: Int)] = []
        func place(_ pod: JSONValue, on node: String) {
            guard let index = nodeIndex[node] else { return }
            let facts = parsed.facts(pod)
            let request = facts.request
            usage[index].milliCPU += request.milliCPU
            usage[index].memory += request.memory
            usage[index].pods += 1
            usage[index].scoredMilliCPU += request.scoredMilliCPU
            usage[index].scoredMemory += request.scoredMemory
            placed.append((facts.namespace, facts.labels, index))
        }
        for (pod, node) in holding { place(pod, on: node) }
        let kept = parsed.kept
        state.withLock { $0.parsed = kept }
        pending.sort { ($0[path: ["metadata", "creationTimestamp"]]?.stringValue ?? "") < ($1[path: ["metadata", "creationTimestamp"]]?.stringValue ?? "") }
        let enough = Self.feasibleNodesToFind(nodeList.count)
        var start = 0
        await withTaskGroup(of: Void.self) { bindings in
            var inFlight = 0
            for json in pending {
                let pod = SchedulingPod(json)
                var placedPods: [PlacedPod]?
                let everywhere = { () -> [PlacedPod] in
                    if let placedPods { return placedPods }
                    let built = placed.map { PlacedPod(namespace: $0.namespace, labels: $0.labels, nodeLabels: nodeList[$0.node].labels) }
                    placedPods = built
                    return built
                }
                var reasons: [String: Int] = [:]
                var best: (index: Int, score: Int64)?
                var feasible = 0
                var examined = 0
                while examined < nodeList.count, feasible < enough {
                    let index = (start + examined) % nodeList.count
                    examined += 1
                    if let reason = filters.reason(pod, on: nodeList[index], usage: usage[index], placedPods: everywhere) {
                        reasons[reason, default: 0] += 1
                        continue
                    }
                    feasible += 1
                    let score = filters.score(pod, on: nodeList[index], usage: usage[index])
                    if best == nil || score > best!.score { best = (index, score) }
                }
                if !nodeList.isEmpty { start = (start + examined) % nodeList.count }
                guard let best else {
                    await reportUnschedulable(json, nodes: nodeList.count, reasons: reasons)
                    continue
                }
                let node = nodeList[best.index].name
                let uid = json[path: ["metadata", "uid"]]?.stringValue ?? ""
                state.withLock { $0.assumed[uid] = (node, .now) }
                place(json, on: node)
                if inFlight >= Self.bindingsInFlight {
                    await bindings.next()
                    inFlight -= 1
                }
                inFlight += 1
                bindings.addTask { [self] in await bind(json, to: node, uid: uid) }
            }
            await bindings.waitForAll()
        }
    }

    /// How many feasible nodes are enough to pick from: all of them up to 100 nodes, then
    /// kube-scheduler's adaptive share (50% less 1% per 125 nodes, at least 5%), at least 100.
    static func feasibleNodesToFind(_ nodes: Int) -> Int {
        guard nodes > 100 else { return nodes }
        let percentage = max(5, 50 - nodes / 125)
        return max(100, nodes * percentage / 100)
    }

    /// Binds an assumed pod; on failure the assumption is dropped, so a later pass tries again.
    private func bind(_ pod: JSONValue, to node: String, uid: String) async {
        if await bind(pod, to: node) { return }
        _ = state.withLock { $0.assumed.removeValue(forKey: uid) }
    }

    private func bind(_ pod: JSONValue, to node: String) async -> Bool {
        let namespace = pod[path: ["metadata", "namespace"]]?.stringValue ?? "default"
        let name = pod[path: ["metadata", "name"]]?.stringValue ?? ""
        let binding = JSONValue.object(JSONObject([
            ("apiVersion", .string("v1")), ("kind", .string("Binding")),
            ("metadata", .object(JSONObject([("name", .string(name)), ("namespace", .string(namespace)), ("uid", pod[path: ["metadata", "uid"]] ?? .null)]))),
            ("target", .object(JSONObject([("apiVersion", .string("v1")), ("kind", .string("Node")), ("name", .string(node))]))),
        ]))
        do {
            _ = try await client.create(APIResource(Kube.Pod.self), namespace: namespace, name: name, subresource: "binding", binding)
            state.withLock {
                $0.counters.bound += 1
                $0.reported[namespace + "/" + name] = nil
            }
            scheduledEvents.continuation.yield((Self.reference(pod), "Successfully assigned \(namespace)/\(name) to \(node)"))
            return true
        } catch {
            state.withLock { $0.counters.failures += 1 }
            logger.debug("binding failed", metadata: ["pod": "\(namespace)/\(name)", "node": "\(node)", "error": "\(error)"])
            return false
        }
    }

    /// `PodScheduled=False` with kube-scheduler's message and a `FailedScheduling` event, once
    /// per distinct message.
    private func reportUnschedulable(_ pod: JSONValue, nodes: Int, reasons: [String: Int]) async {
        let namespace = pod[path: ["metadata", "namespace"]]?.stringValue ?? "default"
        let name = pod[path: ["metadata", "name"]]?.stringValue ?? ""
        let listed = reasons.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", ")
        let message = nodes == 0 ? "no nodes available to schedule pods" : "0/\(nodes) nodes are available: \(listed)."
        let isNew = state.withLock { state -> Bool in
            state.counters.unschedulable += 1
            defer { state.reported[namespace + "/" + name] = message }
            return state.reported[namespace + "/" + name] != message
        }
        guard isNew else { return }
        let condition = JSONValue.object(JSONObject([
            ("type", .string("PodScheduled")), ("status", .string("False")), ("reason", .string("Unschedulable")), ("message", .string(message)),
            ("lastProbeTime", .null), ("lastTransitionTime", .string(Date().formatted(.iso8601))),
        ]))
        var conditions = (pod[path: ["status", "conditions"]]?.arrayValue ?? []).filter { $0["type"]?.stringValue != "PodScheduled" }
        conditions.append(condition)
        do {
            _ = try await client.patch(APIResource(Kube.Pod.self), namespace: namespace, name: name,
                                       .object(JSONObject([("status", .object(JSONObject([("conditions", .array(conditions))])))])), status: true)
        } catch {
            state.withLock { $0.counters.failures += 1 }
        }
        try? await events.record(Self.reference(pod), type: "Warning", reason: "FailedScheduling", message: message)
    }

    private static func reference(_ pod: JSONValue) -> JSONValue {
        .object(JSONObject([
            ("kind", .string("Pod")), ("namespace", pod[path: ["metadata", "namespace"]] ?? .string("default")),
            ("name", pod[path: ["metadata", "name"]] ?? .null), ("uid", pod[path: ["metadata", "uid"]] ?? .null), ("apiVersion", .string("v1")),
        ]))
    }
}
