import Foundation
import Testing
import TestSupport

/// The fault suite's process faults: `kill -9` of cloudcore and of edgecore at random moments
/// (seeded) while ConfigMaps a pod uses are rewritten round after round. Afterwards the edge must
/// hold every ConfigMap at its latest value, and the pod must have kept running, once, never
/// restarted. FAULT_KILLS (4) rounds; FAULT_SEED picks the moments and the targets.
@Suite("Fault suite: kill -9 of cloudcore and edgecore at random moments", .serialized)
struct ProcessKillTests {
    static let kills = ProcessInfo.processInfo.environment["FAULT_KILLS"].flatMap(Int.init) ?? 4
    static let seed = ProcessInfo.processInfo.environment["FAULT_SEED"].flatMap(UInt64.init) ?? 0xFA017

    static func configMaps(count: Int, value: String) -> String {
        (0..<count).map { "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: kill-\($0), namespace: default}\ndata: {round: \"\(value)\"}\n" }
            .joined(separator: "---\n")
    }

    @Test("the edge converges to the latest ConfigMaps and the pod runs once through kill -9 of either daemon")
    func killNineAtRandomMoments() async throws {
        let cluster = try await EdgeCluster()
        defer { cluster.end() }
        let (directory, cloud) = (cluster.directory, cluster.cloud)
        let edge = try await cluster.addEdge("kill-edge")
        let count = 20
        try await cloud.apply(Self.configMaps(count: count, value: "initial"))
        try await cloud.apply("""
            apiVersion: v1
            kind: Pod
            metadata: {name: survivor, namespace: default}
            spec:
              nodeName: kill-edge
              containers:
              - {name: main, image: busybox, command: ["/bin/sh", "-c", "exec sleep 3600 # \(directory)/survivor"], envFrom: [\(
                (0..<count).map { "{configMapRef: {name: kill-\($0)}}" }.joined(separator: ", "))]}

            """)
        #expect(await eventually(timeout: .seconds(60)) { await cloud.jsonPath("{.status.phase}", of: "pod", "survivor") == "Running" }, "\(edge.log)")
        let started = await cloud.jsonPath("{.status.containerStatuses[0].state.running.startedAt}", of: "pod", "survivor")

        var generator = SplitMix(seed: Self.seed)
        var killed: [String: Int] = ["cloudcore": 0, "edgecore": 0]
        var convergence: [String] = []
        let firstTarget = generator.next() % 2
        for round in 0..<Self.kills {
            let value = "round-\(round)"
            // The writer retries while cloudcore (and its API server) is down.
            let writer = Task {
                while true {
                    do {
                        try await cloud.apply(Self.configMaps(count: count, value: value))
                        return
                    } catch {
                        try await Task.sleep(for: .milliseconds(200))
                    }
                }
            }
            try await Task.sleep(for: .milliseconds(Int(generator.next() % 1_500)))
            // Alternating, from a seeded first: both daemons die at random moments.
            let target = (firstTarget + UInt64(round)) % 2 == 0 ? "cloudcore" : "edgecore"
            killed[target, default: 0] += 1
            if target == "cloudcore" { cloud.kill9() } else { edge.kill9DaemonOnly() }
            try await Task.sleep(for: .milliseconds(Int(generator.next() % 1_000)))
            if target == "cloudcore" { try await cloud.start() } else { try await edge.start() }
            let restarted = ContinuousClock.now
            try await writer.value
            // Each round converges before the next fault.
            let converged = await eventually(timeout: .seconds(60)) {
                for index in 0..<count {
                    guard configMapValue(await edge.localObject("/api/v1/namespaces/default/configmaps/kill-\(index)"), "round") == value else { return false }
                }
                return true
            }
            #expect(converged, "round \(round) after killing \(target): \(edge.log)")
            let took = ContinuousClock.now - restarted
            convergence.append(String(format: "%@ %.2f s", target, Double(took.components.seconds) + Double(took.components.attoseconds) / 1e18))
        }

        // The pod ran throughout, once: not restarted, not started twice by a restarted edgecore.
        #expect(await eventually(timeout: .seconds(30)) {
            await cloud.jsonPath("{.status.conditions[?(@.type==\"Ready\")].status}", of: "node", "kill-edge") == "True"
        })
        #expect(await cloud.jsonPath("{.status.containerStatuses[0].restartCount}", of: "pod", "survivor") == "0")
        #expect(await cloud.jsonPath("{.status.containerStatuses[0].state.running.startedAt}", of: "pod", "survivor") == started)
        let running = try runProcess("/usr/bin/pgrep", ["-f", "--", "sleep 3600 # \(directory)/survivor"]).output.split(separator: "\n").count
        #expect(running == 1, "\(running) copies of the pod's container run")
        print("fault: kill -9: \(Self.kills) kills (cloudcore \(killed["cloudcore"] ?? 0), edgecore \(killed["edgecore"] ?? 0)); \(count) ConfigMaps "
              + "converged after each restart in: \(convergence.joined(separator: ", ")); the pod ran once, never restarted")
    }
}
