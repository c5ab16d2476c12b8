import Foundation
import KubeModel
import Logging
import ServiceLifecycle
import Synchronization

/// kube-controller-manager's ReplicaSet controller, for the embedded control plane: keeps
/// `spec.replicas` pods of each ReplicaSet's template, owned by it (`ownerReferences` with
/// `controller: true`, so garbage collection removes them with it), creating what is missing
/// and deleting the surplus (pending before running, not ready before ready, newest first),
/// and writes its status (`replicas`, `fullyLabeledReplicas`, `readyReplicas`,
/// `availableReplicas`, `observedGeneration`). Pods it created and has not seen yet count as
/// there, so a pass never creates twice. Finished pods (`Succeeded`, `Failed`) and pods being
/// deleted do not count. Against a real cluster kube-controller-manager does this.
public final class ReplicaSetController: Service, Sendable {
    /// What it counted.
    public struct Counters: Sendable, Equatable {
        public var podsCreated = 0
        public var podsDeleted = 0
        public var failures = 0
    }

    /// The user the embedded workload controllers act as (kube's controller roles are bound to it).
    public static let user = BootstrapPolicy.controllerManagerUser

    /// New pods created for one ReplicaSet in one pass, at most (kube's burst is 500).
    public let burst: Int
    private let client: KubeClient
    private let replicaSets: Informer
    private let pods: Informer
    private let logger: Logger
    private struct State {
        var counters = Counters()
        /// Pods created, by ReplicaSet uid, that the pod informer has not shown yet, and when
        /// (an expectation older than a minute is given up, as kube's expire).
        var expected: [String: [String: ContinuousClock.Instant]] = [:]
    }
    private let state = Mutex(State())

    public init(client: KubeClient, burst: Int = 500, logger: Logger = Logger(label: "replicaset-controller")) {
        self.client = client
        self.burst = burst
        self.logger = logger
        replicaSets = Informer(client: client, resource: Self.replicaSetResource)
        pods = Informer(client: client, resource: APIResource(Kube.Pod.self))
    }

    static let replicaSetResource = APIResource.standard.first { $0.storageName == "replicasets.apps" }!

    public var counters: Counters { state.withLock { $0.counters } }

    /// Runs the informers and syncs on every change until graceful shutdown or cancellation.
    public func run() async {
        await InformerDriven.run([.init(replicaSets), .init(pods) { $0.isControlled(by: "ReplicaSet") }]) { [self] () async -> Duration? in await syncAll() }
    }

    /// One pass over every ReplicaSet; when a ready pod becomes available later
    /// (`minReadySeconds`), how long until then.
    @discardableResult
    public func syncAll() async -> Duration? {
        var byOwner: [String: [JSONValue]] = [:]
        for pod in pods.objects {
            guard let owner = Self.controllerUID(of: pod) else { continue }
            byOwner[owner, default: []].append(pod)
        }
        let current = replicaSets.objects
        let uids = Set(current.compactMap { $0[path: ["metadata", "uid"]]?.stringValue })
        state.withLock { $0.expected = $0.expected.filter { uids.contains($0.key) } }
        var requeue: Duration?
        for replicaSet in current where replicaSet[path: ["metadata", "deletionTimestamp"]] == nil {
            if let later = await sync(replicaSet, owned: byOwner[replicaSet[path: ["metadata", "uid"]]?.stringValue ?? ""] ?? []) {
                requeue = min(requeue ?? later, later)
            }
        }
        return requeue
    }

    private func sync(_ replicaSet: JSONValue, owned: [JSONValue]) async -> Duration? {
        let uid = replicaSet[path: ["metadata", "uid"]]?.stringValue ?? ""
        let namespace = replicaSet[path: ["metadata", "namespace"]]?.stringValue ?? "default"
        let wanted = Int(replicaSet[path: ["spec", "replicas"]]?.int64Value ?? 1)
        let active = owned.filter(Self.isActive)
        let seen = Set(owned.compactMap { $0[path: ["metadata", "name"]]?.stringValue })
        let now = ContinuousClock.now
        let pending = state.withLock { state -> Int in
            state.expected[uid] = state.expected[uid]?.filter { !seen.contains($0.key) && now - $0.value < .seconds(60) }
            return state.expected[uid]?.count ?? 0
        }
        let difference = wanted - active.count - pending
        if difference > 0 {
            // kube's slow start: batches of 1, 2, 4, … created at once, stopping at a failure
            // (a quota or admission refusal then costs one request, not hundreds).
            var left = min(difference, burst)
            var batch = 1
            while left > 0 {
                let size = min(batch, left)
                let names = await withTaskGroup(of: String?.self) { group in
                    for _ in 0..<size { group.addTask { [self] in await createPod(for: replicaSet, namespace: namespace) } }
                    var names: [String?] = []
                    for await name in group { names.append(name) }
                    return names
                }
                state.withLock { state in
                    for case let name? in names { state.expected[uid, default: [:]][name] = now }
                }
                guard names.allSatisfy({ $0 != nil }) else { break }
                left -= size
                batch *= 2
            }
        } else if difference < 0, pending == 0 {
            for pod in Self.deletionOrder(active).prefix(-difference) { await delete(pod, namespace: namespace) }
        }
        return await writeStatus(replicaSet, active: active)
    }

    private func createPod(for replicaSet: JSONValue, namespace: String) async -> String? {
        let name = replicaSet[path: ["metadata", "name"]]?.stringValue ?? ""
        var metadata = replicaSet[path: ["spec", "template", "metadata"]]?.objectValue ?? JSONObject()
        metadata["generateName"] = .string(name + "-")
        metadata["namespace"] = .string(namespace)
        metadata["ownerReferences"] = .array([.object(JSONObject([
            ("apiVersion", .string("apps/v1")), ("kind", .string("ReplicaSet")), ("name", .string(name)),
            ("uid", replicaSet[path: ["metadata", "uid"]] ?? .null), ("controller", .bool(true)), ("blockOwnerDeletion", .bool(true)),
        ]))])
        let pod = JSONValue.object(JSONObject([
            ("apiVersion", .string("v1")), ("kind", .string("Pod")), ("metadata", .object(metadata)),
            ("spec", replicaSet[path: ["spec", "template", "spec"]] ?? .object(JSONObject())),
        ]))
        do {
            let created = try await client.create(APIResource(Kube.Pod.self), namespace: namespace, pod)
            state.withLock { $0.counters.podsCreated += 1 }
            return created[path: ["metadata", "name"]]?.stringValue
        } catch {
            state.withLock { $0.counters.failures += 1 }
            logger.warning("cannot create a pod", metadata: ["replicaset": "\(namespace)/\(name)", "error": "\(error)"])
            return nil
        }
    }

    private func delete(_ pod: JSONValue, namespace: String) async {
        guard let name = pod[path: ["metadata", "name"]]?.stringValue else { return }
        do {
            try await client.delete(APIResource(Kube.Pod.self), namespace: namespace, name: name)
            state.withLock { $0.counters.podsDeleted += 1 }
        } catch let error as APIError where error.code == 404 {
        } catch {
            state.withLock { $0.counters.failures += 1 }
        }
    }

    private func writeStatus(_ replicaSet: JSONValue, active: [JSONValue]) async -> Duration? {
        let selector = (try? LabelSelector(json: replicaSet[path: ["spec", "selector"]])) ?? LabelSelector.everything
        let ready = active.filter(Self.isReady).count
        let minReady = Double(replicaSet[path: ["spec", "minReadySeconds"]]?.int64Value ?? 0)
        let now = Date()
        var available = 0
        var requeue: Duration?
        for pod in active {
            let left = Self.secondsUntilAvailable(pod, minReadySeconds: minReady, now: now)
            if left == 0 { available += 1 } else if let left { requeue = min(requeue ?? .seconds(left), .seconds(left)) }
        }
        let status = JSONObject([
            ("replicas", .integer(active.count)),
            ("fullyLabeledReplicas", .integer(active.filter { selector.matches(SchedulingFilters.labels($0)) }.count)),
            ("readyReplicas", .integer(ready)), ("availableReplicas", .integer(available)),
            ("observedGeneration", replicaSet[path: ["metadata", "generation"]] ?? .integer(1)),
        ])
        var current = replicaSet["status"]?.objectValue ?? JSONObject()
        var changed = false
        for (key, value) in status where current[key] != value {
            current[key] = value
            changed = true
        }
        guard changed else { return requeue }
        let namespace = replicaSet[path: ["metadata", "namespace"]]?.stringValue ?? "default"
        do {
            _ = try await client.patch(Self.replicaSetResource, namespace: namespace, name: replicaSet[path: ["metadata", "name"]]?.stringValue ?? "",
                                       .object(JSONObject([("status", .object(status))])), status: true)
        } catch {
            state.withLock { $0.counters.failures += 1 }
        }
        return requeue
    }

    /// 0 when the pod is available (ready for `minReadySeconds`), the seconds left when it is
    /// ready but not for long enough, `nil` when it is not ready.
    static func secondsUntilAvailable(_ pod: JSONValue, minReadySeconds: Double, now: Date) -> Double? {
        guard let ready = pod[path: ["status", "conditions"]]?.arrayValue?.first(where: { $0["type"]?.stringValue == "Ready" }),
              ready["status"]?.stringValue == "True" else { return nil }
        guard minReadySeconds > 0 else { return 0 }
        guard let text = ready["lastTransitionTime"]?.stringValue, let since = try? Date(text, strategy: .iso8601) else { return 0 }
        let left = since.addingTimeInterval(minReadySeconds).timeIntervalSince(now)
        return left <= 0 ? 0 : left
    }

    /// The uid of the pod's controlling owner, if a ReplicaSet.
    static func controllerUID(of pod: JSONValue) -> String? {
        pod[path: ["metadata", "ownerReferences"]]?.arrayValue?.first { $0["controller"]?.boolValue == true && $0["kind"]?.stringValue == "ReplicaSet" }?["uid"]?.stringValue
    }

    /// Counts toward the replicas: not finished, not being deleted.
    static func isActive(_ pod: JSONValue) -> Bool {
        let phase = pod[path: ["status", "phase"]]?.stringValue
        return phase != "Succeeded" && phase != "Failed" && pod[path: ["metadata", "deletionTimestamp"]] == nil
    }

    static func isReady(_ pod: JSONValue) -> Bool {
        pod[path: ["status", "conditions"]]?.arrayValue?.contains { $0["type"]?.stringValue == "Ready" && $0["status"]?.stringValue == "True" } == true
    }

    /// kube's order for scaling down: unscheduled, then pending, then not ready, then newest.
    static func deletionOrder(_ pods: [JSONValue]) -> [JSONValue] {
        func rank(_ pod: JSONValue) -> (Int, Int, Int, String) {
            let unscheduled = (pod[path: ["spec", "nodeName"]]?.stringValue ?? "").isEmpty ? 0 : 1
            let pending = pod[path: ["status", "phase"]]?.stringValue == "Running" ? 1 : 0
            let ready = isReady(pod) ? 1 : 0
            return (unscheduled, pending, ready, pod[path: ["metadata", "creationTimestamp"]]?.stringValue ?? "")
        }
        return pods.sorted { left, right in
            let (a, b) = (rank(left), rank(right))
            if a.0 != b.0 { return a.0 < b.0 }
            if a.1 != b.1 { return a.1 < b.1 }
            if a.2 != b.2 { return a.2 < b.2 }
            return a.3 > b.3
        }
    }
}
