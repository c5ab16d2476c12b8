// cloud-bench: cloudcore's figures, each beside a baseline measured in the same run, against a
// real cloudcore process with its embedded API server, driven by the real kubectl.
//   configmaps: `kubectl apply` of N ConfigMaps (and a pod using them all) for one node, until a
//               real edgecore's MetaServer lists all N; beside the apply alone.
//   restart:    M simulated nodes hold a pod and a ConfigMap each; cloudcore stops, every
//               ConfigMap changes, cloudcore starts: the time until every node holds the new
//               version, beside the time until every node has reconnected; and what was resent.
//   rss:        cloudcore's resident memory idle, then with K simulated nodes connected.
//   workloads:  a Deployment of R replicas over N simulated kubelets, create → all Running
//               (pod startup p50/p99), beside R bare pods bound by nodeName (WorkloadFigures.swift).
import ArgumentParser
import BenchSupport
import Foundation
import Logging

@main
struct CloudBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cloud-bench",
        abstract: "cloudcore's delivery times and memory against same-run baselines (run it with -c release; needs kubectl).")

    enum Scenario: String, ExpressibleByArgument, CaseIterable { case configmaps, restart, rss, workloads, all }

    @Option(help: "Which figures: configmaps, restart, rss, workloads or all.")
    var only: Scenario = .all
    @Option(help: "ConfigMaps applied for one node.")
    var configmaps = 1000
    @Option(help: "Simulated nodes converging after a cloudcore restart.")
    var nodes = 100
    @Option(help: "Simulated nodes connected for the memory figure.")
    var connected = 1000
    @Option(help: "Replicas of the workload figures' Deployment (and bare pods).")
    var replicas = 1000
    @Flag(help: "Simulated nodes connect over WebSocket instead of QUIC.")
    var webSocket = false

    func run() async throws {
        bootstrapBenchLogging(level: .critical)
        if only == .configmaps || only == .all { try await configMapFigures() }
        if only == .restart || only == .all { try await restartFigures() }
        if only == .rss || only == .all { try await memoryFigures() }
        if only == .workloads || only == .all { try await workloadFigures() }
    }

    // MARK: configmaps

    func configMapFigures() async throws {
        let directory = makeDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let rig = try CloudCoreRig(directory: directory + "/cloud")
        try await rig.start()
        defer { rig.stop() }
        let edge = try EdgeCoreRig(name: "bench-edge", directory: directory + "/edge", cloud: rig)
        try await edge.start()
        defer { edge.stop() }

        var yaml = ""
        for index in 0..<configmaps {
            yaml += "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm-\(index), namespace: default}\ndata: {value: \"\(index)\"}\n---\n"
        }
        yaml += "apiVersion: v1\nkind: Pod\nmetadata: {name: uses-all, namespace: default}\nspec:\n  nodeName: bench-edge\n"
        yaml += "  containers:\n  - name: c\n    image: busybox\n    command: [/bin/sleep, \"3600\"]\n    envFrom:\n"
        for index in 0..<configmaps { yaml += "    - configMapRef: {name: cm-\(index)}\n" }
        try yaml.write(toFile: directory + "/objects.yaml", atomically: true, encoding: .utf8)

        let started = ContinuousClock.now
        try rig.kubectl("apply -f \(directory)/objects.yaml")
        let applied = ContinuousClock.now - started
        let deadline = started + .seconds(600)
        while edge.configMapCount() < configmaps {
            guard ContinuousClock.now < deadline else { throw BenchError("the edge holds only \(edge.configMapCount()) of \(configmaps) ConfigMaps") }
            try await Task.sleep(for: .milliseconds(50))
        }
        let atEdge = ContinuousClock.now - started
        print(String(format: "configmaps: kubectl apply of %d ConfigMaps + 1 pod returned after %.2f s (baseline); all %d held by the edge's MetaManager after %.2f s (ratio %.2f, %.2f s after apply returned)",
                     configmaps, applied.seconds, configmaps, atEdge.seconds, atEdge.seconds / applied.seconds, (atEdge - applied).seconds))
    }

    // MARK: restart

    func restartFigures() async throws {
        let directory = makeDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let rig = try CloudCoreRig(directory: directory + "/cloud")
        try await rig.start()
        let edges = try SimulatedEdges(count: nodes, prefix: "sim", rig: rig, token: try rig.token(), preferQUIC: !webSocket)
        try await edges.connect()

        func objects(version: String) -> String {
            edges.names.map { node in
                """
                apiVersion: v1
                kind: ConfigMap
                metadata: {name: cfg-\(node), namespace: default}
                data: {version: "\(version)"}
                ---
                apiVersion: v1
                kind: Pod
                metadata: {name: app-\(node), namespace: default}
                spec:
                  nodeName: \(node)
                  containers: [{name: c, image: busybox, envFrom: [{configMapRef: {name: cfg-\(node)}}]}]

                """
            }.joined(separator: "---\n")
        }
        try objects(version: "v1").write(toFile: directory + "/v1.yaml", atomically: true, encoding: .utf8)
        try objects(version: "v2").write(toFile: directory + "/v2.yaml", atomically: true, encoding: .utf8)
        try rig.kubectl("apply -f \(directory)/v1.yaml")
        try await waitUntil(timeout: .seconds(300), "every node holds its pod and ConfigMap") {
            edges.names.allSatisfy { edges.holdings(of: $0).count == 2 }
        }
        let before = edges.counts()

        rig.stop()
        try await rig.withAPIServerAlone { try rig.kubectl("apply -f \(directory)/v2.yaml") }
        let started = ContinuousClock.now
        try await rig.start()
        let ready = ContinuousClock.now - started
        var reconnected: Duration?
        var converged: Duration?
        while reconnected == nil || converged == nil {
            guard ContinuousClock.now < started + .seconds(300) else { throw BenchError("\(nodes) nodes did not converge in 300 s") }
            if reconnected == nil, edges.connected == nodes { reconnected = ContinuousClock.now - started }
            if converged == nil, edges.names.allSatisfy({ edges.holdings(of: $0)["default/configmap/cfg-\($0)"]?.contains(#""version":"v2""#) == true }) {
                converged = ContinuousClock.now - started
            }
            try await Task.sleep(for: .milliseconds(10))
        }
        try await Task.sleep(for: .seconds(2))
        let after = edges.counts()
        let resent = edges.names.map { (after[$0] ?? 0) - (before[$0] ?? 0) }.reduce(0, +)
        await edges.stop()
        rig.stop()
        print(String(format: "restart: %d nodes; cloudcore ready %.2f s after start; all reconnected after %.2f s (baseline); all converged after %.2f s (ratio %.2f); messages after the restart: %d for %d changed ConfigMaps",
                     nodes, ready.seconds, reconnected!.seconds, converged!.seconds, converged!.seconds / reconnected!.seconds, resent, nodes))
    }

    // MARK: rss

    func memoryFigures() async throws {
        let directory = makeDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let rig = try CloudCoreRig(directory: directory + "/cloud")
        try await rig.start()
        defer { rig.stop() }
        guard let pid = rig.pid else { throw BenchError("no cloudcore") }
        try await Task.sleep(for: .seconds(3))
        let idle = residentBytes(pid: pid)
        let edges = try SimulatedEdges(count: connected, prefix: "mem", rig: rig, token: try rig.token(), preferQUIC: !webSocket, record: false)
        let started = ContinuousClock.now
        try await edges.connect()
        let joined = ContinuousClock.now - started
        // Settled: every node registered (Node objects), then a quiet moment.
        try await waitUntil(timeout: .seconds(300), "\(connected) Node objects") {
            (try? rig.kubectl("get nodes --no-headers").split(separator: "\n").count) == connected
        }
        try await Task.sleep(for: .seconds(5))
        let loaded = residentBytes(pid: pid)
        let parts = memoryParts(pid: pid)
        await edges.stop()
        print(String(format: "rss: cloudcore idle %.1f MB (baseline); with %d nodes connected over %@ %.1f MB (+%.1f MB, %.1f KiB per node; anonymous %.1f MB, file %.1f MB); joining all took %.1f s",
                     Double(idle) / 1e6, connected, webSocket ? "WebSocket" : "QUIC", Double(loaded) / 1e6, Double(loaded - idle) / 1e6,
                     Double(loaded - idle) / 1024 / Double(connected), parts.anonymous / 1e6, parts.file / 1e6, joined.seconds))
    }

    // MARK: helpers

    func makeDirectory() -> String {
        let path = NSTemporaryDirectory() + "cloud-bench-\(UUID().uuidString)"
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    func waitUntil(timeout: Duration, _ what: String, _ condition: () throws -> Bool) async throws {
        let deadline = ContinuousClock.now + timeout
        while try !condition() {
            guard ContinuousClock.now < deadline else { throw BenchError("timed out waiting until \(what)") }
            try await Task.sleep(for: .milliseconds(50))
        }
    }
}
