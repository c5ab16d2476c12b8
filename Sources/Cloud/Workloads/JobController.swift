import Foundation
import KubeModel
import Logging
import ServiceLifecycle
import Synchronization

/// kube-controller-manager's Job controller (NonIndexed completion), for the embedded control
/// plane: runs up to `parallelism` pods at a time until `completions` have succeeded (or, with
/// no `completions`, until one has and the rest are done); counts a failed pod, as the edge
/// reports it, toward `backoffLimit`, and after each failure waits longer before the next pod
/// (10 s doubling to 6 min, as kube); fails the Job past its `backoffLimit` or
/// `activeDeadlineSeconds`, stopping its pods; suspends and resumes; and deletes a finished Job
/// `ttlSecondsAfterFinished` later (kube's TTL-after-finished controller).
///
/// Finished pods are counted exactly once, as kube does: each pod carries the
/// `batch.kubernetes.io/job-tracking` finalizer; a finished pod's uid is first recorded in
/// `status.uncountedTerminatedPods`, then its finalizer is removed, then it moves into
/// `succeeded` or `failed`. Against a real cluster kube-controller-manager does this.
public final class JobController: Service, Sendable {
    /// What it counted.
    public struct Counters: Sendable, Equatable {
        public var podsCreated = 0
        public var podsDeleted = 0
        public var jobsDeleted = 0
        public var failures = 0
    }

    /// The first wait after a failed pod (doubled after each further one, at most 6 minutes).
    public let failureBackoff: Duration
    let client: KubeClient
    private let jobs: Informer
    private let pods: Informer
    let logger: Logger
    private struct State {
        var counters = Counters()
        /// Pods created (by Job uid, then pod name) and not yet seen, with when.
        var created: [String: [String: ContinuousClock.Instant]] = [:]
        /// Pods deleted (by name) and pods whose finalizer was removed (by uid), not yet seen so.
        var deleted: [String: ContinuousClock.Instant] = [:]
        var finalizersRemoved: [String: ContinuousClock.Instant] = [:]
        /// The resourceVersion of each Job's last status this controller wrote (by Job uid): a
        /// pass waits until the informer shows at least that one, rather than deciding on an
        /// older status (which could start a pod for a Job it had just completed).
        var statusWritten: [String: UInt64] = [:]
    }
    private let state = Mutex(State())

    public init(client: KubeClient, failureBackoff: Duration = .seconds(10), logger: Logger = Logger(label: "job-controller")) {
        self.client = client
        self.failureBackoff = failureBackoff
        self.logger = logger
        jobs = Informer(client: client, resource: Self.jobResource)
        pods = Informer(client: client, resource: APIResource(Kube.Pod.self))
    }

    static let jobResource = APIResource.standard.first { $0.storageName == "jobs.batch" }!
    static let trackingFinalizer = "batch.kubernetes.io/job-tracking"

    public var counters: Counters { state.withLock { $0.counters } }

    func count(_ change: (inout Counters) -> Void) { state.withLock { change(&$0.counters) } }

    /// Runs the informers and syncs on every change (and when a backoff, deadline or TTL falls
    /// due) until graceful shutdown or cancellation.
    public func run() async {
        await InformerDriven.run([.init(jobs), .init(pods) { $0.isControlled(by: "Job") }]) { [self] () async -> Duration? in await syncAll() }
    }

    /// One pass over every Job; how long until one needs another look, if any does.
    @discardableResult
    public func syncAll() async -> Duration? {
        let allPods = pods.objects
        let names = Set(allPods.compactMap { $0[path: ["metadata", "name"]]?.stringValue })
        let now = ContinuousClock.now
        let tracked = Set(allPods.filter {
            $0[path: ["metadata", "finalizers"]]?.arrayValue?.contains(.string(Self.trackingFinalizer)) == true
        }.compactMap { $0[path: ["metadata", "uid"]]?.stringValue })
        state.withLock { state in
            state.deleted = state.deleted.filter { names.contains($0.key) && now - $0.value < .seconds(60) }
            state.finalizersRemoved = state.finalizersRemoved.filter { tracked.contains($0.key) && now - $0.value < .seconds(60) }
        }
        var owned: [String: [JSONValue]] = [:]
        for pod in allPods {
            guard let owner = DeploymentController.controllerUID(of: pod, kind: "Job") else { continue }
            owned[owner, default: []].append(pod)
        }
        // Pods whose Job is gone or going keep no tracking finalizer (they would never go).
        let liveJobs = Set(jobs.objects.filter { $0[path: ["metadata", "deletionTimestamp"]] == nil }.compactMap { $0[path: ["metadata", "uid"]]?.stringValue })
        let removed = finalizersRemoved()
        for pod in allPods where pod[path: ["metadata", "finalizers"]]?.arrayValue?.contains(.string(Self.trackingFinalizer)) == true {
            guard let uid = pod[path: ["metadata", "uid"]]?.stringValue, !removed.contains(uid) else { continue }
            let owner = DeploymentController.controllerUID(of: pod, kind: "Job")
            if owner.map({ !liveJobs.contains($0) }) ?? true { await removeTrackingFinalizer(pod) }
        }
        var requeue: Duration?
        let current = jobs.objects
        let written = state.withLock { state in
            let uids = Set(current.compactMap { $0[path: ["metadata", "uid"]]?.stringValue })
            state.statusWritten = state.statusWritten.filter { uids.contains($0.key) }
            return state.statusWritten
        }
        for job in current where job[path: ["metadata", "deletionTimestamp"]] == nil {
            let uid = job[path: ["metadata", "uid"]]?.stringValue ?? ""
            if let wrote = written[uid], Self.version(of: job) < wrote {
                // Its own last write is on the way; that event brings the next pass.
                requeue = min(requeue ?? .milliseconds(100), .milliseconds(100))
                continue
            }
            if let later = await sync(job, pods: owned[uid] ?? []) { requeue = min(requeue ?? later, later) }
        }
        return requeue
    }

    /// A Job's pods sorted out.
    struct PodCounts {
        var active: [JSONValue] = []
        var ready = 0
        /// Finished pods still carrying the tracking finalizer, by outcome.
        var finishedSucceeded: [JSONValue] = []
        var finishedFailed: [JSONValue] = []
        /// When the newest pod failed.
        var lastFailure: Date?
        /// Pods this controller deleted that the informer does not show going yet.
        var stopping = 0
    }

    static func sortPods(_ pods: [JSONValue], deleted: [String: ContinuousClock.Instant]) -> PodCounts {
        var counts = PodCounts()
        for pod in pods {
            let phase = pod[path: ["status", "phase"]]?.stringValue
            let tracked = pod[path: ["metadata", "finalizers"]]?.arrayValue?.contains(.string(trackingFinalizer)) == true
            let beingDeleted = pod[path: ["metadata", "deletionTimestamp"]] != nil
                || deleted[pod[path: ["metadata", "name"]]?.stringValue ?? ""] != nil
            switch phase {
            case "Succeeded":
                if tracked { counts.finishedSucceeded.append(pod) }
            case "Failed":
                if tracked { counts.finishedFailed.append(pod) }
                let finished = pod[path: ["status", "containerStatuses"]]?.arrayValue?
                    .compactMap { $0[path: ["state", "terminated", "finishedAt"]]?.stringValue }.max()
                if let at = (finished ?? pod[path: ["metadata", "creationTimestamp"]]?.stringValue).flatMap({ try? Date($0, strategy: .iso8601) }) {
                    counts.lastFailure = max(counts.lastFailure ?? at, at)
                }
            default:
                if beingDeleted {
                    // A pod deleted before it finished counts as failed once it is stopped.
                    if tracked, pod[path: ["metadata", "deletionTimestamp"]] != nil {
                        counts.finishedFailed.append(pod)
                    } else if tracked {
                        counts.stopping += 1
                    }
                } else {
                    counts.active.append(pod)
                    if ReplicaSetController.isReady(pod) { counts.ready += 1 }
                }
            }
        }
        return counts
    }

    // MARK: what this controller did that the informers do not show yet

    func recentlyDeleted() -> [String: ContinuousClock.Instant] { state.withLock { $0.deleted } }

    func finalizersRemoved() -> Set<String> { state.withLock { Set($0.finalizersRemoved.keys) } }

    /// Pods created for the Job that `seen` does not show yet (forgotten after a minute).
    func pendingCreations(for uid: String, seen: [JSONValue]) -> Int {
        let names = Set(seen.compactMap { $0[path: ["metadata", "name"]]?.stringValue })
        let now = ContinuousClock.now
        return state.withLock { state in
            state.created[uid] = state.created[uid]?.filter { !names.contains($0.key) && now - $0.value < .seconds(60) }
            return state.created[uid]?.count ?? 0
        }
    }

    // MARK: writes

    func createPod(for job: JSONValue) async {
        let name = job[path: ["metadata", "name"]]?.stringValue ?? ""
        let namespace = job[path: ["metadata", "namespace"]]?.stringValue ?? "default"
        let uid = job[path: ["metadata", "uid"]]?.stringValue ?? ""
        var pod = job[path: ["spec", "template"]] ?? .object(JSONObject())
        pod["apiVersion"] = .string("v1")
        pod["kind"] = .string("Pod")
        pod.set(.string(name + "-"), at: ["metadata", "generateName"])
        pod.set(.string(namespace), at: ["metadata", "namespace"])
        pod.set(.array([.string(Self.trackingFinalizer)]), at: ["metadata", "finalizers"])
        pod.set(.array([.object(JSONObject([
            ("apiVersion", .string("batch/v1")), ("kind", .string("Job")), ("name", .string(name)),
            ("uid", .string(uid)), ("controller", .bool(true)), ("blockOwnerDeletion", .bool(true)),
        ]))]), at: ["metadata", "ownerReferences"])
        do {
            let created = try await client.create(APIResource(Kube.Pod.self), namespace: namespace, pod)
            state.withLock { state in
                state.counters.podsCreated += 1
                state.created[uid, default: [:]][created[path: ["metadata", "name"]]?.stringValue ?? ""] = .now
            }
        } catch {
            count { $0.failures += 1 }
            logger.warning("cannot create a job pod", metadata: ["job": "\(namespace)/\(name)", "error": "\(error)"])
        }
    }

    func delete(_ pod: JSONValue) async {
        guard let name = pod[path: ["metadata", "name"]]?.stringValue else { return }
        do {
            try await client.delete(APIResource(Kube.Pod.self), namespace: pod[path: ["metadata", "namespace"]]?.stringValue ?? "default", name: name)
            state.withLock { state in
                state.counters.podsDeleted += 1
                state.deleted[name] = .now
            }
        } catch let error as APIError where error.code == 404 {
        } catch {
            count { $0.failures += 1 }
        }
    }

    /// Removes the tracking finalizer of a finished pod (its outcome is recorded in the status).
    func removeTrackingFinalizer(_ pod: JSONValue) async {
        guard let name = pod[path: ["metadata", "name"]]?.stringValue, let uid = pod[path: ["metadata", "uid"]]?.stringValue else { return }
        let kept = (pod[path: ["metadata", "finalizers"]]?.arrayValue ?? []).filter { $0 != .string(Self.trackingFinalizer) }
        let patch = JSONValue.object(JSONObject([("metadata", .object(JSONObject([
            ("finalizers", kept.isEmpty ? .null : .array(kept)),
            ("resourceVersion", pod[path: ["metadata", "resourceVersion"]] ?? .null),
        ])))]))
        do {
            _ = try await client.patch(APIResource(Kube.Pod.self), namespace: pod[path: ["metadata", "namespace"]]?.stringValue ?? "default",
                                       name: name, patch)
            state.withLock { $0.finalizersRemoved[uid] = .now }
        } catch let error as APIError where error.code == 404 {
            state.withLock { $0.finalizersRemoved[uid] = .now }
        } catch {
            count { $0.failures += 1 }
        }
    }

    /// Merges `status` into the Job's status; whether it was written.
    private static func version(of object: JSONValue) -> UInt64 {
        object[path: ["metadata", "resourceVersion"]]?.stringValue.flatMap { UInt64($0) } ?? 0
    }

    func patchStatus(_ job: JSONValue, _ status: JSONValue) async -> Bool {
        let namespace = job[path: ["metadata", "namespace"]]?.stringValue ?? "default"
        let name = job[path: ["metadata", "name"]]?.stringValue ?? ""
        do {
            let written = try await client.patch(Self.jobResource, namespace: namespace, name: name, .object(JSONObject([("status", status)])), status: true)
            if let uid = job[path: ["metadata", "uid"]]?.stringValue {
                let version = Self.version(of: written)
                state.withLock { $0.statusWritten[uid] = max($0.statusWritten[uid] ?? 0, version) }
            }
            return true
        } catch {
            count { $0.failures += 1 }
            logger.warning("cannot write a job's status", metadata: ["job": "\(namespace)/\(name)", "error": "\(error)"])
            return false
        }
    }
}
