import Foundation
import KubeModel
import Logging
import ServiceLifecycle
import Synchronization

/// kube-controller-manager's DaemonSet controller, for the embedded control plane: one pod of
/// each DaemonSet on every node it belongs on (``DaemonPlacement``: selector, affinity, taints
/// and the tolerations kube adds), edge nodes included; a node that joins or gains the labels
/// gets its pod, one that loses them loses it. Pods are pinned to their node by required node
/// affinity on `metadata.name` and bound by the scheduler, as kube does since 1.12.
///
/// Templates are kept as ControllerRevisions (`{daemonset}-{hash}`, the hash also labels the
/// pods as `controller-revision-hash`), so `kubectl rollout history|undo` work. RollingUpdate
/// replaces pods of older revisions while at most `maxUnavailable` nodes lack an available pod;
/// OnDelete replaces a pod only when it is deleted. Failed daemon pods are replaced. Status as
/// kube reports it. Against a real cluster kube-controller-manager does this.
public final class DaemonSetController: Service, Sendable {
    /// What it counted.
    public struct Counters: Sendable, Equatable {
        public var podsCreated = 0
        public var podsDeleted = 0
        public var revisionsCreated = 0
        public var failures = 0
    }

    let client: KubeClient
    private let daemonSets: Informer
    private let nodes: Informer
    private let pods: Informer
    private let revisions: Informer
    let logger: Logger
    /// New pods made for one DaemonSet in one pass, at most.
    public let burst: Int
    private struct State {
        var counters = Counters()
        /// Pods created (by DaemonSet uid, then node) and pods deleted (by name) that the pod
        /// informer does not show yet, with when (given up after a minute).
        var created: [String: [String: ContinuousClock.Instant]] = [:]
        var deleted: [String: ContinuousClock.Instant] = [:]
    }
    private let state = Mutex(State())

    public init(client: KubeClient, burst: Int = 500, logger: Logger = Logger(label: "daemonset-controller")) {
        self.client = client
        self.burst = burst
        self.logger = logger
        daemonSets = Informer(client: client, resource: Self.daemonSetResource)
        nodes = Informer(client: client, resource: APIResource(Kube.Node.self))
        pods = Informer(client: client, resource: APIResource(Kube.Pod.self))
        revisions = Informer(client: client, resource: Self.revisionResource)
    }

    static let daemonSetResource = APIResource.standard.first { $0.storageName == "daemonsets.apps" }!
    static let revisionResource = APIResource.standard.first { $0.storageName == "controllerrevisions.apps" }!
    static let hashLabel = "controller-revision-hash"

    public var counters: Counters { state.withLock { $0.counters } }

    func count(_ change: (inout Counters) -> Void) { state.withLock { change(&$0.counters) } }

    /// Runs the informers and syncs on every change until graceful shutdown or cancellation.
    public func run() async {
        await InformerDriven.run([.init(daemonSets), .init(nodes) { $0.changesNodePlacement }, .init(pods) { $0.isControlled(by: "DaemonSet") }, .init(revisions)]) { [self] () async -> Duration? in await syncAll() }
    }

    /// One pass over every DaemonSet; when a pod becomes available later, how long until then.
    @discardableResult
    public func syncAll() async -> Duration? {
        let allPods = pods.objects
        let podNames = Set(allPods.compactMap { $0[path: ["metadata", "name"]]?.stringValue })
        let now = ContinuousClock.now
        state.withLock { state in
            state.deleted = state.deleted.filter { podNames.contains($0.key) && now - $0.value < .seconds(60) }
        }
        var owned: [String: [JSONValue]] = [:]
        for pod in allPods {
            guard let owner = DeploymentController.controllerUID(of: pod, kind: "DaemonSet") else { continue }
            owned[owner, default: []].append(pod)
        }
        var ownedRevisions: [String: [JSONValue]] = [:]
        for revision in revisions.objects {
            guard let owner = DeploymentController.controllerUID(of: revision, kind: "DaemonSet") else { continue }
            ownedRevisions[owner, default: []].append(revision)
        }
        let nodeList = nodes.objects
        var requeue: Duration?
        for daemonSet in daemonSets.objects where daemonSet[path: ["metadata", "deletionTimestamp"]] == nil {
            let uid = daemonSet[path: ["metadata", "uid"]]?.stringValue ?? ""
            if let later = await sync(daemonSet, nodes: nodeList, pods: owned[uid] ?? [], revisions: ownedRevisions[uid] ?? []) {
                requeue = min(requeue ?? later, later)
            }
        }
        return requeue
    }

    /// What one DaemonSet has on one node.
    struct NodePods {
        var node: JSONValue
        var shouldRun: Bool
        var shouldContinueRunning: Bool
        /// Its live pods (not being deleted), oldest first.
        var pods: [JSONValue]
    }

    private func sync(_ daemonSet: JSONValue, nodes: [JSONValue], pods: [JSONValue], revisions: [JSONValue]) async -> Duration? {
        guard let hash = await currentRevisionHash(daemonSet, revisions: revisions) else { return nil }
        let uid = daemonSet[path: ["metadata", "uid"]]?.stringValue ?? ""
        let template = DaemonPlacement.podWithTolerations(daemonSet[path: ["spec", "template"]] ?? .null)
        let deleted = state.withLock { $0.deleted }
        let live = pods.filter { pod in
            pod[path: ["metadata", "deletionTimestamp"]] == nil && deleted[pod[path: ["metadata", "name"]]?.stringValue ?? ""] == nil
        }.sorted { ($0[path: ["metadata", "creationTimestamp"]]?.stringValue ?? "") < ($1[path: ["metadata", "creationTimestamp"]]?.stringValue ?? "") }
        var byNode: [String: [JSONValue]] = [:]
        var toDelete: [JSONValue] = []
        for pod in live {
            guard let node = DaemonPlacement.targetNode(of: pod) else { toDelete.append(pod); continue }
            byNode[node, default: []].append(pod)
        }
        let nodeNames = Set(nodes.compactMap { $0[path: ["metadata", "name"]]?.stringValue })
        // Pods of nodes that are gone.
        for (node, pods) in byNode where !nodeNames.contains(node) { toDelete += pods }
        var placements: [NodePods] = []
        var needPods: [String] = []
        let now = ContinuousClock.now
        let pendingNodes = state.withLock { state -> Set<String> in
            let seen = Set(byNode.keys)
            state.created[uid] = state.created[uid]?.filter { !seen.contains($0.key) && now - $0.value < .seconds(60) }
            return Set(state.created[uid]?.keys.map { $0 } ?? [])
        }
        for node in nodes {
            let name = node[path: ["metadata", "name"]]?.stringValue ?? ""
            let decision = DaemonPlacement.decide(template, on: node)
            var onNode = byNode[name] ?? []
            // Failed pods are replaced.
            let failed = onNode.filter { $0[path: ["status", "phase"]]?.stringValue == "Failed" }
            toDelete += failed
            onNode.removeAll { $0[path: ["status", "phase"]]?.stringValue == "Failed" }
            if !decision.shouldContinueRunning {
                toDelete += onNode
                onNode = []
            } else if onNode.count > 1 {
                // One pod per node: the oldest stays.
                toDelete += onNode.dropFirst()
                onNode = Array(onNode.prefix(1))
            }
            if decision.shouldRun, onNode.isEmpty, !pendingNodes.contains(name) { needPods.append(name) }
            placements.append(NodePods(node: node, shouldRun: decision.shouldRun, shouldContinueRunning: decision.shouldContinueRunning, pods: onNode))
        }
        let minReady = Double(daemonSet[path: ["spec", "minReadySeconds"]]?.int64Value ?? 0)
        if daemonSet[path: ["spec", "updateStrategy", "type"]]?.stringValue != "OnDelete" {
            toDelete += Self.rollingReplacements(placements, hash: hash, daemonSet: daemonSet, minReadySeconds: minReady)
        }
        for pod in toDelete { await delete(pod) }
        for node in needPods.prefix(burst) { await createPod(for: daemonSet, template: template, node: node, hash: hash) }
        await cleanUpRevisions(daemonSet, revisions: revisions, current: hash, pods: pods)
        return await writeStatus(daemonSet, placements: placements, hash: hash, minReadySeconds: minReady)
    }

    /// RollingUpdate: old-revision pods to delete now. An old pod that is not available goes
    /// at once; an available one only while fewer than `maxUnavailable` nodes lack an available pod.
    static func rollingReplacements(_ placements: [NodePods], hash: String, daemonSet: JSONValue, minReadySeconds: Double) -> [JSONValue] {
        let desired = placements.filter(\.shouldRun).count
        var maxUnavailable = RolloutPlan.resolve(daemonSet[path: ["spec", "updateStrategy", "rollingUpdate", "maxUnavailable"]],
                                                 total: desired, roundUp: true, default: 1)
        if maxUnavailable == 0 { maxUnavailable = 1 }
        let now = Date()
        func available(_ pod: JSONValue) -> Bool { ReplicaSetController.secondsUntilAvailable(pod, minReadySeconds: minReadySeconds, now: now) == 0 }
        var unavailable = placements.filter { $0.shouldRun && !($0.pods.first.map(available) ?? false) }.count
        var replace: [JSONValue] = []
        for placement in placements where placement.shouldRun {
            guard let pod = placement.pods.first, pod[path: ["metadata", "labels", hashLabel]]?.stringValue != hash else { continue }
            if !available(pod) {
                replace.append(pod)
            } else if unavailable < maxUnavailable {
                replace.append(pod)
                unavailable += 1
            }
        }
        return replace
    }

    private func createPod(for daemonSet: JSONValue, template: JSONValue, node: String, hash: String) async {
        let name = daemonSet[path: ["metadata", "name"]]?.stringValue ?? ""
        let namespace = daemonSet[path: ["metadata", "namespace"]]?.stringValue ?? "default"
        var pod = DaemonPlacement.pinned(template, to: node)
        pod["apiVersion"] = .string("v1")
        pod["kind"] = .string("Pod")
        pod.set(.string(name + "-"), at: ["metadata", "generateName"])
        pod.set(.string(namespace), at: ["metadata", "namespace"])
        pod.set(.string(hash), at: ["metadata", "labels", Self.hashLabel])
        pod.set(.string(String(daemonSet[path: ["metadata", "generation"]]?.int64Value ?? 1)), at: ["metadata", "labels", "pod-template-generation"])
        pod.set(.array([.object(JSONObject([
            ("apiVersion", .string("apps/v1")), ("kind", .string("DaemonSet")), ("name", .string(name)),
            ("uid", daemonSet[path: ["metadata", "uid"]] ?? .null), ("controller", .bool(true)), ("blockOwnerDeletion", .bool(true)),
        ]))]), at: ["metadata", "ownerReferences"])
        let uid = daemonSet[path: ["metadata", "uid"]]?.stringValue ?? ""
        do {
            _ = try await client.create(APIResource(Kube.Pod.self), namespace: namespace, pod)
            state.withLock { state in
                state.counters.podsCreated += 1
                state.created[uid, default: [:]][node] = .now
            }
        } catch {
            count { $0.failures += 1 }
            logger.warning("cannot create a daemon pod", metadata: ["daemonset": "\(namespace)/\(name)", "node": "\(node)", "error": "\(error)"])
        }
    }

    private func delete(_ pod: JSONValue) async {
        guard let name = pod[path: ["metadata", "name"]]?.stringValue else { return }
        let namespace = pod[path: ["metadata", "namespace"]]?.stringValue ?? "default"
        do {
            try await client.delete(APIResource(Kube.Pod.self), namespace: namespace, name: name)
            state.withLock { state in
                state.counters.podsDeleted += 1
                state.deleted[name] = .now
            }
        } catch let error as APIError where error.code == 404 {
        } catch {
            count { $0.failures += 1 }
        }
    }

    private func writeStatus(_ daemonSet: JSONValue, placements: [NodePods], hash: String, minReadySeconds: Double) async -> Duration? {
        let now = Date()
        var (desired, current, misscheduled, ready, available, updated) = (0, 0, 0, 0, 0, 0)
        var requeue: Duration?
        for placement in placements {
            guard let pod = placement.pods.first else { continue }
            guard placement.shouldRun else {
                misscheduled += 1
                continue
            }
            current += 1
            if ReplicaSetController.isReady(pod) { ready += 1 }
            switch ReplicaSetController.secondsUntilAvailable(pod, minReadySeconds: minReadySeconds, now: now) {
            case 0?: available += 1
            case let left?: requeue = min(requeue ?? .seconds(left), .seconds(left))
            case nil: break
            }
            if pod[path: ["metadata", "labels", Self.hashLabel]]?.stringValue == hash { updated += 1 }
        }
        desired = placements.filter(\.shouldRun).count
        let status = JSONObject([
            ("currentNumberScheduled", .integer(current)), ("numberMisscheduled", .integer(misscheduled)),
            ("desiredNumberScheduled", .integer(desired)), ("numberReady", .integer(ready)),
            ("observedGeneration", daemonSet[path: ["metadata", "generation"]] ?? .integer(1)),
            ("updatedNumberScheduled", .integer(updated)), ("numberAvailable", .integer(available)),
            ("numberUnavailable", .integer(max(0, desired - available))),
        ])
        var changed = false
        for (key, value) in status where daemonSet[path: ["status", key]] != value { changed = true }
        guard changed else { return requeue }
        let namespace = daemonSet[path: ["metadata", "namespace"]]?.stringValue ?? "default"
        do {
            _ = try await client.patch(Self.daemonSetResource, namespace: namespace, name: daemonSet[path: ["metadata", "name"]]?.stringValue ?? "",
                                       .object(JSONObject([("status", .object(status))])), status: true)
        } catch let error as APIError where error.code == 404 {
        } catch {
            count { $0.failures += 1 }
        }
        return requeue
    }
}
