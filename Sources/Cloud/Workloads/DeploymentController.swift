import Foundation
import KubeModel
import Logging
import ServiceLifecycle
import Synchronization

/// kube-controller-manager's Deployment controller, for the embedded control plane. Each
/// Deployment owns ReplicaSets (`ownerReferences` with `controller: true`), one per pod template
/// it has had, named `{deployment}-{pod-template-hash}`; the one whose template is the
/// Deployment's current one is the new ReplicaSet, the others are old.
///
/// - RollingUpdate grows the new ReplicaSet while at most `replicas + maxSurge` pods exist and
///   shrinks old ones while at least `replicas - maxUnavailable` stay available; Recreate
///   scales every old ReplicaSet to 0 and starts the new one once their pods are gone.
/// - A resize mid-rollout is shared among the ReplicaSets in proportion; a paused Deployment is
///   only resized.
/// - Revisions (`deployment.kubernetes.io/revision`) number the templates; going back to an
///   earlier template (`kubectl rollout undo`) gives its ReplicaSet the next revision and
///   records the old one in `revision-history`. Old ReplicaSets with no pods beyond
///   `revisionHistoryLimit` are deleted.
/// - Status: replicas, updated, ready, available and unavailable counts, `observedGeneration`,
///   and the `Available` and `Progressing` conditions with kube's reasons and messages,
///   including `ProgressDeadlineExceeded` after `progressDeadlineSeconds` without progress.
/// - Events `ScalingReplicaSet` on the Deployment, as kube words them.
///
/// Against a real cluster kube-controller-manager does this.
public final class DeploymentController: Service, Sendable {
    /// What it counted.
    public struct Counters: Sendable, Equatable {
        public var replicaSetsCreated = 0
        public var replicaSetsScaled = 0
        public var replicaSetsDeleted = 0
        public var failures = 0
    }

    let client: KubeClient
    private let deployments: Informer
    private let replicaSets: Informer
    private let pods: Informer
    let events: EventRecorder
    let logger: Logger
    private struct State {
        var counters = Counters()
        /// Objects this controller wrote, by uid, until the informers show them (or newer), or a
        /// minute has passed.
        var written: [String: (object: JSONValue, at: ContinuousClock.Instant)] = [:]
    }
    private let state = Mutex(State())

    public init(client: KubeClient, logger: Logger = Logger(label: "deployment-controller")) {
        self.client = client
        self.logger = logger
        events = EventRecorder(client: client, component: "deployment-controller")
        deployments = Informer(client: client, resource: Self.deploymentResource)
        replicaSets = Informer(client: client, resource: ReplicaSetController.replicaSetResource)
        pods = Informer(client: client, resource: APIResource(Kube.Pod.self))
    }

    static let deploymentResource = APIResource.standard.first { $0.storageName == "deployments.apps" }!

    public var counters: Counters { state.withLock { $0.counters } }

    func count(_ change: (inout Counters) -> Void) { state.withLock { change(&$0.counters) } }

    /// Runs the informers and syncs on every change (and when a progress deadline falls due)
    /// until graceful shutdown or cancellation.
    public func run() async {
        await InformerDriven.run([
            .init(deployments), .init(replicaSets),
            // Pods matter only to Recreate, which waits until the old ones have stopped.
            .init(pods) { $0.isControlled(by: "ReplicaSet") && $0.changesPhaseOrExistence },
        ]) { [self] () async -> Duration? in await syncAll() }
    }

    /// One pass over every Deployment; how long until a deadline needs another, if any does.
    @discardableResult
    public func syncAll() async -> Duration? {
        var owned: [String: [ReplicaSetView]] = [:]
        let cached = replicaSets.objects
        let cachedUIDs = Set(cached.compactMap { $0[path: ["metadata", "uid"]]?.stringValue })
        let createdUnseen = state.withLock { state in
            state.written.values.map(\.object).filter { object in
                object["kind"]?.stringValue == "ReplicaSet" && !cachedUIDs.contains(object[path: ["metadata", "uid"]]?.stringValue ?? "")
            }
        }
        for replicaSet in cached.map(fresher) + createdUnseen {
            guard let owner = Self.controllerUID(of: replicaSet, kind: "Deployment") else { continue }
            owned[owner, default: []].append(ReplicaSetView(object: replicaSet))
        }
        var podsByReplicaSet: [String: [JSONValue]] = [:]
        let recreating = deployments.objects.contains { $0[path: ["spec", "strategy", "type"]]?.stringValue == "Recreate" }
        for pod in recreating ? pods.objects : [] {
            guard let owner = Self.controllerUID(of: pod, kind: "ReplicaSet") else { continue }
            podsByReplicaSet[owner, default: []].append(pod)
        }
        forgetWritten(seen: replicaSets.objects + deployments.objects)
        var requeue: Duration?
        for deployment in deployments.objects.map(fresher) where deployment[path: ["metadata", "deletionTimestamp"]] == nil {
            let uid = deployment[path: ["metadata", "uid"]]?.stringValue ?? ""
            if let later = await sync(deployment, owned: owned[uid] ?? [], pods: podsByReplicaSet) {
                requeue = min(requeue ?? later, later)
            }
        }
        return requeue
    }

    /// The uid of the object's controlling owner of `kind`.
    static func controllerUID(of object: JSONValue, kind: String) -> String? {
        object[path: ["metadata", "ownerReferences"]]?.arrayValue?
            .first { $0["controller"]?.boolValue == true && $0["kind"]?.stringValue == kind }?["uid"]?.stringValue
    }

    // MARK: objects written and not yet seen

    /// The object, or what this controller last wrote of it when that is newer.
    func fresher(_ object: JSONValue) -> JSONValue {
        guard let uid = object[path: ["metadata", "uid"]]?.stringValue,
              let written = state.withLock({ $0.written[uid]?.object }) else { return object }
        return Self.version(of: written) > Self.version(of: object) ? written : object
    }

    func remember(_ object: JSONValue) {
        guard let uid = object[path: ["metadata", "uid"]]?.stringValue else { return }
        state.withLock { $0.written[uid] = (object, .now) }
    }

    func forget(uid: String) {
        state.withLock { $0.written[uid] = nil }
    }

    private func forgetWritten(seen: [JSONValue]) {
        let versions = Dictionary(seen.compactMap { object in
            object[path: ["metadata", "uid"]]?.stringValue.map { ($0, Self.version(of: object)) }
        }, uniquingKeysWith: max)
        let now = ContinuousClock.now
        state.withLock { state in
            state.written = state.written.filter { uid, entry in
                guard now - entry.at < .seconds(60) else { return false }
                guard let seen = versions[uid] else { return true }
                return Self.version(of: entry.object) > seen
            }
        }
    }

    /// The embedded store's resourceVersions are revisions: numbers that grow.
    private static func version(of object: JSONValue) -> UInt64 {
        object[path: ["metadata", "resourceVersion"]]?.stringValue.flatMap { UInt64($0) } ?? 0
    }
}
