// workload-bench: the embedded control plane's scheduler against a same-run baseline.
//   scheduler: N pending pods over M Node objects (no edges), bound by the embedded scheduler
//              through pods/binding; beside the same pods bound by a loop that posts
//              pods/binding round-robin without looking at anything (the API's cost alone).
// The Deployment figures with simulated edges are in cloud-bench (`--only workloads`).
import ArgumentParser
import BenchSupport
import Cloud
import Foundation
import KubeModel
import Logging

@main
struct WorkloadBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "workload-bench",
        abstract: "The embedded scheduler's throughput against a same-run baseline (run it with -c release).")

    @Option(help: "Pending pods to bind.")
    var pods = 10_000
    @Option(help: "Node objects to bind them to.")
    var nodes = 1_000

    func run() async throws {
        bootstrapBenchLogging(level: .error)
        let directory = NSTemporaryDirectory() + "workload-bench-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = try ObjectStore(configuration: .init(path: directory + "/objects.db"))
        let server = APIServer(configuration: .init(port: 0), store: store)
        let port = try await server.bind()
        let serving = Task { try await server.run() }
        defer { serving.cancel() }
        let client = try KubeClient(configuration: Kubeconfig(server: "http://127.0.0.1:\(port)"), maxIdleConnections: 32)
        let podResource = APIResource(Kube.Pod.self)
        let nodeResource = APIResource(Kube.Node.self)
        for namespace in ["baseline", "scheduled"] {
            _ = try await client.create(APIResource.standard.first { $0.plural == "namespaces" }!,
                                        try JSONValue(parsing: #"{"metadata":{"name":"\#(namespace)"}}"#))
        }
        print("creating \(nodes) nodes")
        try await concurrently(nodes, width: 16) { index in
            let name = "node-\(index)"
            _ = try await client.create(nodeResource, try JSONValue(parsing: """
                {"metadata":{"name":"\(name)","labels":{"kubernetes.io/hostname":"\(name)","topology.kubernetes.io/zone":"zone-\(index % 3)"}}}
                """))
            _ = try await client.patch(nodeResource, name: name, try JSONValue(parsing: """
                {"status":{"allocatable":{"cpu":"64","memory":"256Gi","pods":"110"},"capacity":{"cpu":"64","memory":"256Gi","pods":"110"},
                "conditions":[{"type":"Ready","status":"True"}]}}
                """), status: true)
        }
        func createPending(in namespace: String) async throws {
            try await concurrently(pods, width: 16) { index in
                _ = try await client.create(podResource, namespace: namespace, try JSONValue(parsing: """
                    {"metadata":{"name":"pod-\(index)","labels":{"app":"bench"}},
                    "spec":{"containers":[{"name":"c","image":"busybox","resources":{"requests":{"cpu":"100m","memory":"64Mi"}}}]}}
                    """))
            }
        }

        // Baseline: the same bindings, posted one after another with no decision at all.
        print("creating \(pods) pending pods (baseline)")
        try await createPending(in: "baseline")
        let baselineStart = ContinuousClock.now
        for index in 0..<pods {
            _ = try await client.create(podResource, namespace: "baseline", name: "pod-\(index)", subresource: "binding", try JSONValue(parsing: """
                {"apiVersion":"v1","kind":"Binding","metadata":{"name":"pod-\(index)"},"target":{"kind":"Node","name":"node-\(index % nodes)"}}
                """))
        }
        let baselineSeconds = (ContinuousClock.now - baselineStart).seconds

        // The scheduler: every filter and score over every node for each pod, then the binding.
        print("creating \(pods) pending pods (scheduler)")
        try await createPending(in: "scheduled")
        let scheduler = PodScheduler(client: client)
        let started = ContinuousClock.now
        let running = Task { await scheduler.run() }
        var firstBinding: ContinuousClock.Instant?
        while scheduler.counters.bound < pods {
            try await Task.sleep(for: .milliseconds(5))
            if firstBinding == nil, scheduler.counters.bound > 0 { firstBinding = .now }
            if ContinuousClock.now - started > .seconds(600) { break }
        }
        let schedulerSeconds = (ContinuousClock.now - started).seconds
        let bindingSeconds = (ContinuousClock.now - (firstBinding ?? started)).seconds
        running.cancel()
        let (placed, _) = try await client.list(podResource, namespace: "scheduled")
        let perNode = Dictionary(grouping: placed, by: { $0[path: ["spec", "nodeName"]]?.stringValue ?? "" }).mapValues(\.count)
        print("""

            scheduler: \(pods) pending pods over \(nodes) nodes
              embedded scheduler, from its start (informers listing 20,000 pods included)
                                           \(format(Double(scheduler.counters.bound) / schedulerSeconds)) pods/s  (\(format(schedulerSeconds)) s, \(scheduler.counters.bound) bound, failures \(scheduler.counters.failures))
              embedded scheduler, first to last binding
                                           \(format(Double(scheduler.counters.bound) / bindingSeconds)) pods/s  (\(format(bindingSeconds)) s)
              baseline: pods/binding only  \(format(Double(pods) / baselineSeconds)) pods/s  (\(format(baselineSeconds)) s)
              pods per node: \(perNode.values.min() ?? 0)–\(perNode.values.max() ?? 0)
            """)
    }

    private func format(_ value: Double) -> String { String(format: "%.1f", value) }

    /// Runs `body(0..<count)` with at most `width` at once.
    private func concurrently(_ count: Int, width: Int, _ body: @escaping @Sendable (Int) async throws -> Void) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            var next = 0
            for _ in 0..<min(width, count) {
                let index = next
                group.addTask { try await body(index) }
                next += 1
            }
            while try await group.next() != nil, next < count {
                let index = next
                group.addTask { try await body(index) }
                next += 1
            }
        }
    }
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
