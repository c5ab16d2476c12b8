@testable import Cloud
import Foundation
import KubeModel
import Synchronization
import Testing
import TestSupport

/// The embedded server with the workload controllers as the controller manager's user (and the
/// scheduler as its own, when asked), and a stand-in for kubelet: no edge runs in these tests.
struct WorkloadCluster {
    let server: EmbeddedServer
    let deployments: DeploymentController
    let daemonSets: DaemonSetController
    let jobs: JobController
    let cronJobs: CronJobController
    /// The CronJob controller's clock: now, plus what the test moves it on by.
    let clock = ShiftedClock()
    let admin: KubeClient
    let tasks: [Task<Void, Never>]

    /// With `scheduler`, pods run only once bound to a node (and nodes must be made).
    init(scheduler: Bool = false) async throws {
        server = try await EmbeddedServer(secure: true)
        let kubeconfig = try server.writeKubeconfig(for: "controller-manager", token: server.credentials!.controllerManagerToken)
        let client = try KubeClient(configuration: try Kubeconfig.load(path: kubeconfig))
        let replicaSets = ReplicaSetController(client: client)
        deployments = DeploymentController(client: client)
        daemonSets = DaemonSetController(client: client)
        jobs = JobController(client: client, failureBackoff: .milliseconds(100))
        let clock = clock
        cronJobs = CronJobController(client: client, now: { clock.now })
        admin = try KubeClient(configuration: try Kubeconfig.load(path: server.directory + "/kubeconfig"))
        let (deployments, daemonSets, jobs, cronJobs, admin) = (deployments, daemonSets, jobs, cronJobs, admin)
        var tasks = [Task { await replicaSets.run() }, Task { await deployments.run() }, Task { await daemonSets.run() }, Task { await jobs.run() },
                     Task { await cronJobs.run() },
                     Task { await Self.markPodsReady(admin, boundOnly: scheduler) }]
        if scheduler {
            let schedulerConfig = try server.writeKubeconfig(for: "scheduler", token: server.credentials!.schedulerToken)
            let podScheduler = PodScheduler(client: try KubeClient(configuration: try Kubeconfig.load(path: schedulerConfig)))
            tasks.append(Task { await podScheduler.run() })
        }
        self.tasks = tasks
    }

    /// Makes nodes with 4 CPUs and 4Gi, and `labels` (`key: value, …`) beside the hostname.
    func addNode(_ name: String, labels: String = "") async throws {
        let extra = labels.isEmpty ? "" : ", " + labels
        let applied = try await kubectl("apply", "-f", "@input", input: """
            apiVersion: v1
            kind: Node
            metadata: {name: \(name), labels: {kubernetes.io/hostname: \(name)\(extra)}}
            """)
        #expect(applied.status == 0, "\(applied.output)")
        let patched = try await kubectl("patch", "node", name, "--subresource=status", "--type=merge", "-p",
                                        #"{"status":{"allocatable":{"cpu":"4","memory":"4Gi","pods":"110"},"capacity":{"cpu":"4","memory":"4Gi","pods":"110"}}}"#)
        #expect(patched.status == 0, "\(patched.output)")
    }

    /// Marks every pod Running and Ready shortly after it appears (with `boundOnly`, once it is
    /// bound to a node), except pods labelled `stuck=true` (they stay Pending, as a pod whose
    /// image never comes); a running pod labelled `outcome=succeed|fail` then finishes so; and
    /// finishes the graceful deletion of pods being deleted, as kubelet does.
    static func markPodsReady(_ client: KubeClient, boundOnly: Bool) async {
        let resource = APIResource(Kube.Pod.self)
        while !Task.isCancelled {
            if let (pods, _) = try? await client.list(resource) {
                // A bound pod being deleted is stopped at once, and kubelet's final delete sent.
                for pod in pods where pod[path: ["metadata", "deletionTimestamp"]] != nil {
                    let options = JSONValue.object(JSONObject([("gracePeriodSeconds", .integer(0)),
                                                               ("preconditions", .object(JSONObject([("uid", pod[path: ["metadata", "uid"]] ?? .null)])))]))
                    _ = try? await client.delete(resource, namespace: pod[path: ["metadata", "namespace"]]?.stringValue,
                                                 name: pod[path: ["metadata", "name"]]?.stringValue ?? "", options: options)
                }
                // A running pod labelled `outcome=succeed|fail` then finishes so (a Job's pod).
                for pod in pods where pod[path: ["status", "phase"]]?.stringValue == "Running" {
                    let phase: String
                    switch pod[path: ["metadata", "labels", "outcome"]]?.stringValue {
                    case "succeed": phase = "Succeeded"
                    case "fail": phase = "Failed"
                    default: continue
                    }
                    let now = Date().formatted(.iso8601)
                    let status = JSONValue.object(JSONObject([("status", .object(JSONObject([
                        ("phase", .string(phase)),
                        ("conditions", .array([.object(JSONObject([("type", .string("Ready")), ("status", .string("False")),
                                                                   ("lastTransitionTime", .string(now))]))])),
                        ("containerStatuses", .array([.object(JSONObject([("name", .string("c")), ("state", .object(JSONObject([
                            ("terminated", .object(JSONObject([("exitCode", .integer(phase == "Failed" ? 1 : 0)), ("finishedAt", .string(now))]))),
                        ])))]))])),
                    ])))]))
                    _ = try? await client.patch(resource, namespace: pod[path: ["metadata", "namespace"]]?.stringValue,
                                                name: pod[path: ["metadata", "name"]]?.stringValue ?? "", status, status: true)
                }
                for pod in pods where [nil, "Pending"].contains(pod[path: ["status", "phase"]]?.stringValue)
                    && pod[path: ["metadata", "labels", "stuck"]]?.stringValue != "true"
                    && pod[path: ["metadata", "deletionTimestamp"]] == nil
                    && (!boundOnly || !(pod[path: ["spec", "nodeName"]]?.stringValue ?? "").isEmpty) {
                    let now = Date().formatted(.iso8601)
                    let status = JSONValue.object(JSONObject([("status", .object(JSONObject([
                        ("phase", .string("Running")),
                        ("conditions", .array([.object(JSONObject([("type", .string("Ready")), ("status", .string("True")),
                                                                   ("lastTransitionTime", .string(now))]))])),
                    ])))]))
                    _ = try? await client.patch(resource, namespace: pod[path: ["metadata", "namespace"]]?.stringValue,
                                                name: pod[path: ["metadata", "name"]]?.stringValue ?? "", status, status: true)
                }
            }
            try? await Task.sleep(for: .milliseconds(150))
        }
    }

    func stop() async {
        for task in tasks { task.cancel() }
        await server.server.stop()
        removeTemporaryDirectory(server.directory)
    }

    func kubectl(_ arguments: String..., input: String? = nil) async throws -> (status: Int32, output: String) {
        let result = try await server.kubectl(arguments, input: input)
        return (result.status, result.output)
    }

    func jsonpath(_ kind: String, _ name: String, _ path: String) async -> String {
        (try? await server.kubectl(["get", kind] + (name.isEmpty ? [] : [name]) + ["-o", "jsonpath=" + path]).output) ?? ""
    }

    /// Pods of the selector: (total, ready and not being deleted, images, nodes bound to).
    func pods(_ selector: String) async throws -> (total: Int, ready: Int, images: Set<String>, nodes: [String]) {
        let (pods, _) = try await admin.list(APIResource(Kube.Pod.self), namespace: "default", labelSelector: selector)
        let live = pods.filter { $0[path: ["metadata", "deletionTimestamp"]] == nil }
        let ready = live.filter(ReplicaSetController.isReady)
        return (pods.count, ready.count, Set(live.compactMap { $0[path: ["spec", "containers"]]?.arrayValue?.first?["image"]?.stringValue }),
                live.compactMap { $0[path: ["spec", "nodeName"]]?.stringValue }.sorted())
    }

    func rolloutStatus(_ name: String, kind: String = "deployment", timeout: String = "60s") async throws -> (status: Int32, output: String) {
        try await kubectl("rollout", "status", kind + "/" + name, "--timeout=" + timeout)
    }
}

/// Now, moved on by the test.
final class ShiftedClock: Sendable {
    private let offset = Mutex<TimeInterval>(0)
    var now: Date { Date().addingTimeInterval(offset.withLock { $0 }) }
    func advance(_ seconds: TimeInterval) { offset.withLock { $0 += seconds } }
}
