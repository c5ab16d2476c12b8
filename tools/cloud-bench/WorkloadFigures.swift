// The workload figures: with N simulated kubelets joined to a real cloudcore, a Deployment of R
// replicas from create to every pod Running as the edges report it (pod startup p50/p99, from
// the pod's first appearance in a watch to the watch showing it Ready); beside R bare pods with
// spec.nodeName spread over the same nodes, measured the same way in the same run.
import BenchSupport
import Cloud
import Foundation
import KubeModel
import Synchronization

extension CloudBench {
    func workloadFigures() async throws {
        let directory = makeDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let rig = try CloudCoreRig(directory: directory + "/cloud")
        try await rig.start()
        defer { rig.stop() }
        let kubelets = try SimulatedKubelets(count: nodes, prefix: "sim", rig: rig, token: try rig.token())
        try await kubelets.start()
        let client = try KubeClient(configuration: try Kubeconfig.load(path: rig.kubeconfig), maxIdleConnections: 32)
        let nodeResource = APIResource(Kube.Node.self)
        let deadline = ContinuousClock.now + .seconds(120)
        while try await client.list(nodeResource).items.filter({ $0[path: ["status", "allocatable", "cpu"]] != nil }).count < nodes {
            guard ContinuousClock.now < deadline else { throw BenchError("the simulated nodes did not all register") }
            try await Task.sleep(for: .milliseconds(200))
        }
        for namespace in ["bare", "deployed"] { try rig.kubectl("create namespace \(namespace)") }
        let startups = PodStartups()
        let (_, version) = try await client.list(APIResource(Kube.Pod.self))
        let watching = Task {
            try? await client.watch(APIResource(Kube.Pod.self), resourceVersion: version, timeoutSeconds: 3600) { event in startups.observe(event.object) }
        }
        defer { watching.cancel() }

        // Baseline: bare pods bound by nodeName, created 16 at a time.
        let baselineStart = ContinuousClock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<replicas {
                if index >= 16 { try await group.next() }
                group.addTask {
                    _ = try await client.create(APIResource(Kube.Pod.self), namespace: "bare", try JSONValue(parsing: """
                        {"metadata":{"name":"bare-\(index)"},"spec":{"nodeName":"sim-\(index % nodes)","containers":[{"name":"c","image":"busybox"}]}}
                        """))
                }
            }
            try await group.waitForAll()
        }
        let bare = try await startups.waitForRunning(replicas, namespace: "bare", since: baselineStart, arrivals: kubelets.arrivals)

        // The Deployment: ReplicaSet controller, scheduler, EdgeController, the edges.
        let deployStart = ContinuousClock.now
        try rig.kubectl("create deployment web -n deployed --image=busybox --replicas=\(replicas)")
        let deployed = try await startups.waitForRunning(replicas, namespace: "deployed", since: deployStart, arrivals: kubelets.arrivals)
        let placed = try await client.list(APIResource(Kube.Pod.self), namespace: "deployed").items
        let perNode = Dictionary(grouping: placed, by: { $0[path: ["spec", "nodeName"]]?.stringValue ?? "" }).mapValues(\.count)
        await kubelets.stop()
        print("""

            workloads: \(replicas) pods over \(nodes) simulated edge nodes (watch: first sight → Ready)
                                              all Running     startup p50    p99      max
              Deployment (scheduled)         \(deployed.total)   \(deployed.p50)   \(deployed.p99)   \(deployed.max)
              baseline: bare pods (nodeName) \(bare.total)   \(bare.p50)   \(bare.p99)   \(bare.max)
              Deployment pods per node: \(perNode.values.min() ?? 0)–\(perNode.values.max() ?? 0)
              p50 / p99 from first sight: bound       Deployment \(deployed.bound), bare pods \(bare.bound)
                                          at its edge Deployment \(deployed.arrived), bare pods \(bare.arrived)
              pods created over: Deployment \(deployed.created), bare pods \(bare.created)
            """)
    }
}

/// When each pod was first seen and when it was first seen Ready, from one watch of all pods.
final class PodStartups: Sendable {
    private let seen = Mutex<[String: (namespace: String, added: ContinuousClock.Instant, bound: ContinuousClock.Instant?, ready: ContinuousClock.Instant?)]>([:])

    func observe(_ pod: JSONValue) {
        guard let uid = pod[path: ["metadata", "uid"]]?.stringValue else { return }
        let now = ContinuousClock.now
        let ready = pod[path: ["status", "conditions"]]?.arrayValue?.contains { $0["type"]?.stringValue == "Ready" && $0["status"]?.stringValue == "True" } == true
        let bound = pod[path: ["spec", "nodeName"]]?.stringValue?.isEmpty == false
        seen.withLock { seen in
            var entry = seen[uid] ?? (pod[path: ["metadata", "namespace"]]?.stringValue ?? "", now, nil, nil)
            if bound, entry.bound == nil { entry.bound = now }
            if ready, entry.ready == nil { entry.ready = now }
            seen[uid] = entry
        }
    }

    struct Figures {
        var total: String, p50: String, p99: String, max: String
        /// The median and 99th percentile from first sight to bound (a node in `spec.nodeName`).
        var bound: String
        /// The same, from first sight to the pod's arrival at its simulated kubelet.
        var arrived: String
        /// From the first pod's first sight to the last one's: how long creating them took.
        var created: String
    }

    /// Waits until `count` pods of `namespace` are Ready; the time since `since` and the startups.
    func waitForRunning(_ count: Int, namespace: String, since: ContinuousClock.Instant, arrivals: SimulatedKubelets.Arrivals) async throws -> Figures {
        let deadline = ContinuousClock.now + .seconds(600)
        while true {
            let arrived = arrivals.byUID.withLock { $0 }
            let (durations, bindings, deliveries, spread) = seen.withLock { seen in
                let entries = seen.filter { $0.value.namespace == namespace }
                let added = entries.values.map(\.added)
                return (entries.values.compactMap { entry in entry.ready.map { $0 - entry.added } }, entries.values.compactMap { entry in entry.bound.map { $0 - entry.added } },
                        entries.compactMap { uid, entry in arrived[uid].map { $0 - entry.added } }, (added.max() ?? since) - (added.min() ?? since))
            }
            if durations.count >= count {
                let sorted = durations.sorted()
                let bound = bindings.sorted()
                let delivered = deliveries.sorted()
                func text(_ duration: Duration) -> String { String(format: "%7.0f ms", Double(duration.components.seconds) * 1000 + Double(duration.components.attoseconds) / 1e15) }
                func percentile(_ values: [Duration], _ share: Int) -> Duration { values[min(values.count - 1, values.count * share / 100)] }
                return Figures(total: text(ContinuousClock.now - since), p50: text(percentile(sorted, 50)), p99: text(percentile(sorted, 99)),
                               max: text(sorted[sorted.count - 1]), bound: "\(text(percentile(bound, 50))) / \(text(percentile(bound, 99)))",
                               arrived: "\(text(percentile(delivered, 50))) / \(text(percentile(delivered, 99)))", created: text(spread))
            }
            guard ContinuousClock.now < deadline else { throw BenchError("only \(durations.count) of \(count) pods in \(namespace) became Ready") }
            try await Task.sleep(for: .milliseconds(20))
        }
    }
}
