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
    private let state = Mutex<(counters: Counters, reported: [String: String])>((Counters(), [:]))

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
        await InformerDriven.run([pods, nodes]) { [self] in await schedulePending() }
    }

    /// One pass: every pending pod, oldest first, against the nodes as they are now (each
    /// binding counted in the usage the next pod sees).
    public func schedulePending() async {
        let allPods = pods.objects
        let allNodes = nodes.objects.sorted { ($0[path: ["metadata", "name"]]?.stringValue ?? "") < ($1[path: ["metadata", "name"]]?.stringValue ?? "") }
        var usage: [String: SchedulingFilters.Usage] = [:]
        var placed: [(pod: JSONValue, node: String)] = []
        var pending: [JSONValue] = []
        for pod in allPods {
            if let node = pod[path: ["spec", "nodeName"]]?.stringValue, !node.isEmpty {
                let phase = pod[path: ["status", "phase"]]?.stringValue
                guard phase != "Succeeded", phase != "Failed" else { continue }
                add(pod, to: node, usage: &usage, placed: &placed)
            } else if pod[path: ["metadata", "deletionTimestamp"]] == nil,
                      (pod[path: ["spec", "schedulerName"]]?.stringValue ?? Self.schedulerName) == Self.schedulerName {
                pending.append(pod)
            }
        }
        pending.sort { ($0[path: ["metadata", "creationTimestamp"]]?.stringValue ?? "") < ($1[path: ["metadata", "creationTimestamp"]]?.stringValue ?? "") }
        let nodeLabels = Dictionary(allNodes.compactMap { node in node[path: ["metadata", "name"]]?.stringValue.map { ($0, SchedulingFilters.labels(node)) } },
                                    uniquingKeysWith: { first, _ in first })
        for pod in pending {
            let placedPods = placed.map { ($0.pod, nodeLabels[$0.node] ?? [:]) }
            var reasons: [String: Int] = [:]
            var best: (name: String, score: Int64)?
            for node in allNodes {
                guard let name = node[path: ["metadata", "name"]]?.stringValue else { continue }
                let used = usage[name] ?? SchedulingFilters.Usage()
                if let reason = filters.reason(pod, on: node, usage: used, placedPods: placedPods) {
                    reasons[reason, default: 0] += 1
                    continue
                }
                let score = filters.score(pod, on: node, usage: used)
                if best == nil || score > best!.score { best = (name, score) }
            }
            if let best {
                if await bind(pod, to: best.name) { add(pod, to: best.name, usage: &usage, placed: &placed) }
            } else {
                await reportUnschedulable(pod, nodes: allNodes.count, reasons: reasons)
            }
        }
    }

    private func add(_ pod: JSONValue, to node: String, usage: inout [String: SchedulingFilters.Usage], placed: inout [(pod: JSONValue, node: String)]) {
        let request = SchedulingFilters.requests(of: pod)
        usage[node, default: SchedulingFilters.Usage()].milliCPU += request.milliCPU
        usage[node, default: SchedulingFilters.Usage()].memory += request.memory
        usage[node, default: SchedulingFilters.Usage()].pods += 1
        usage[node, default: SchedulingFilters.Usage()].scoredMilliCPU += request.scoredMilliCPU
        usage[node, default: SchedulingFilters.Usage()].scoredMemory += request.scoredMemory
        placed.append((pod, node))
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
            try? await events.record(Self.reference(pod), type: "Normal", reason: "Scheduled",
                                     message: "Successfully assigned \(namespace)/\(name) to \(node)")
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
