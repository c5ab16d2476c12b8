import Foundation
import Testing
import TestSupport

/// `kubectl logs` of pods on a real edge (process runtime), through cloudcore's embedded API
/// server and the node's channel: the options kube-apiserver takes, following across log
/// rotations, `--previous`, the errors kube words, and a node that is offline.
@Suite(.serialized) struct PodLogsEndToEndTests {
    static let pod = """
        apiVersion: v1
        kind: Pod
        metadata: {name: talker, namespace: default}
        spec:
          nodeName: e2e-logs
          terminationGracePeriodSeconds: 1
          containers:
          - name: main
            image: busybox
            command: ["/bin/sh", "-c", "i=0; while [ $i -lt 5 ]; do echo \\"out $i\\"; echo \\"err $i\\" >&2; i=$((i+1)); done; exec sleep 3600"]
          - name: ticker
            image: busybox
            command: ["/bin/sh", "-c", "i=0; while :; do echo \\"tick $i\\"; i=$((i+1)); sleep 0.01; done"]
          - name: crasher
            image: busybox
            command: ["/bin/sh", "-c", "echo \\"run at $(date +%s%N)\\"; sleep 0.5; exit 1"]

        """

    @Test func kubectlLogsTailsSinceLimitsFollowsAcrossRotationsAndShowsThePreviousRun() async throws {
        let cluster = try await EdgeCluster()
        defer { cluster.end() }
        let cloud = cluster.cloud
        let edge = try await cluster.addEdge("e2e-logs", edged: "containerLogMaxSize: 1Ki, containerLogMonitorInterval: 1")
        #expect(await eventually(timeout: .seconds(30)) {
            await cloud.jsonPath("{.status.conditions[?(@.type==\"Ready\")].status}", of: "node", "e2e-logs") == "True"
        }, "\(cloud.log)")
        do {
            try await run(cloud: cloud, edge: edge, cluster: cluster)
        } catch {
            Issue.record("\(error)\ncloudcore:\n\(cloud.log.suffix(3000))\nedgecore:\n\(edge.log.suffix(3000))")
        }
    }

    private func run(cloud: CloudCoreProcess, edge: EdgeCoreProcess, cluster: EdgeCluster) async throws {
        try await cloud.apply(Self.pod)
        #expect(await eventually(timeout: .seconds(30)) { await cloud.jsonPath("{.status.phase}", of: "pod", "talker") == "Running" })

        // Everything, each stream's lines in order.
        var all = ""
        #expect(await eventually { all = (try? await cloud.kubectl("logs", "talker", "-c", "main")) ?? ""; return all.split(separator: "\n").count == 10 }, "\(all)")
        let lines = all.split(separator: "\n").map(String.init)
        #expect(lines.filter { $0.hasPrefix("out") } == (0..<5).map { "out \($0)" })
        #expect(lines.filter { $0.hasPrefix("err") } == (0..<5).map { "err \($0)" })
        // --tail, --timestamps, --since, --since-time, --limit-bytes.
        #expect(try await cloud.kubectl("logs", "talker", "-c", "main", "--tail=2") == lines.suffix(2).map { $0 + "\n" }.joined())
        let stamped = try await cloud.kubectl("logs", "talker", "-c", "main", "--timestamps").split(separator: "\n")
        #expect(stamped.count == 10)
        #expect(stamped.allSatisfy { $0.wholeMatch(of: #/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z (out|err) \d/#) != nil }, "\(stamped)")
        #expect(try await cloud.kubectl("logs", "talker", "-c", "main", "--since=1h") == all)
        let future = ISO8601DateFormatter().string(from: Date().addingTimeInterval(3600))
        #expect(try await cloud.kubectl("logs", "talker", "-c", "main", "--since-time=\(future)") == "")
        #expect(try await cloud.kubectl("logs", "talker", "-c", "main", "--limit-bytes=7") == String(all.prefix(7)))
        // Errors as kube-apiserver words them.
        let unknown = try await runProcessOffPool("/usr/bin/kubectl", ["--kubeconfig", cloud.kubeconfig, "logs", "talker", "-c", "nope"])
        #expect(unknown.status != 0 && unknown.output.contains("container nope is not valid for pod talker"), "\(unknown.output)")
        let negative = try await runProcessOffPool("/usr/bin/kubectl", ["--kubeconfig", cloud.kubeconfig, "logs", "talker", "-c", "main", "--tail=-5", "--limit-bytes=0"])
        #expect(negative.status != 0, "\(negative.output)")

        // -f while the log is rotated every second: every tick arrives once, in order.
        let followed = cloud.directory + "/follow.out"
        let follower = try BackgroundProcess("/usr/bin/kubectl", ["--kubeconfig", cloud.kubeconfig, "logs", "-f", "talker", "-c", "ticker"], outputFile: followed)
        let rotatedLog = edge.directory + "/edged/containers"
        func rotations() -> Int {
            ((try? FileManager.default.subpathsOfDirectory(atPath: rotatedLog)) ?? []).filter { $0.contains("_ticker_") && $0.hasSuffix("output.log.1") }.count
        }
        #expect(await eventually(timeout: .seconds(20)) { rotations() > 0 }, "the ticker's log was never rotated")
        try await Task.sleep(for: .seconds(3))
        follower.stop()
        let ticks = ((try? String(contentsOfFile: followed, encoding: .utf8)) ?? "").split(separator: "\n").compactMap { Int($0.dropFirst("tick ".count)) }
        // At 1 KiB a log holds about 20 ticks: a hundred span several rotations.
        #expect(ticks.count > 100, "\(ticks.count) ticks followed")
        // The log in place when kubectl asked may already have been rotated: it starts there.
        let first = ticks.first ?? 0
        #expect(ticks == Array(first..<first + ticks.count), "ticks lost or repeated across rotations: \(ticks.prefix(20))…")

        // --previous: the crasher's run before the current one.
        #expect(await eventually(timeout: .seconds(40)) {
            Int(await cloud.jsonPath("{.status.containerStatuses[?(@.name==\"crasher\")].restartCount}", of: "pod", "talker") ?? "") ?? 0 >= 1
        })
        let previous = try await cloud.kubectl("logs", "talker", "-c", "crasher", "--previous")
        #expect(previous.hasPrefix("run at "), "\(previous)")
        let noPrevious = try await runProcessOffPool("/usr/bin/kubectl", ["--kubeconfig", cloud.kubeconfig, "logs", "talker", "-c", "main", "--previous"])
        #expect(noPrevious.output.contains(#"previous terminated container "main" in pod "talker" not found"#), "\(noPrevious.output)")

        // The official Python client: the same text, and kube's 400 for a pod of several containers.
        let python = try await runProcessOffPool("/usr/bin/env", ["python3", "-c", """
            import sys
            from kubernetes import client, config
            from kubernetes.client.rest import ApiException
            config.load_kube_config(config_file=sys.argv[1])
            api = client.CoreV1Api()
            print(repr(api.read_namespaced_pod_log("talker", "default", container="main", tail_lines=3)))
            try:
                api.read_namespaced_pod_log("talker", "default")
            except ApiException as error:
                print("status", error.status, error.body)
            """, cloud.kubeconfig])
        #expect(python.output.contains(repr(lines.suffix(3).map { $0 + "\n" }.joined())), "\(python.output)")
        #expect(python.output.contains("status 400"), "\(python.output)")
        #expect(python.output.contains("a container name must be specified for pod talker, choose one of: [main ticker crasher]"), "\(python.output)")

        // Over the WebSocket backend too; and a follow whose node goes away ends (with an error)
        // rather than hang, and the node's next connection serves logs again.
        let webSocketEdge = try await cluster.addEdge("e2e-logs-ws", quic: false)
        try await cloud.apply(Self.pod.replacingOccurrences(of: "name: talker", with: "name: ws-talker").replacingOccurrences(of: "e2e-logs", with: "e2e-logs-ws"))
        #expect(await eventually(timeout: .seconds(30)) { await cloud.jsonPath("{.status.phase}", of: "pod", "ws-talker") == "Running" })
        var overWebSocket = ""
        #expect(await eventually {
            overWebSocket = (try? await cloud.kubectl("logs", "ws-talker", "-c", "main")) ?? ""
            return overWebSocket.split(separator: "\n").count == 10
        }, "\(overWebSocket)")
        let cut = try BackgroundProcess("/usr/bin/kubectl", ["--kubeconfig", cloud.kubeconfig, "logs", "-f", "ws-talker", "-c", "ticker"],
                                        outputFile: cloud.directory + "/cut.out")
        try await Task.sleep(for: .seconds(1))
        await webSocketEdge.stop()
        #expect(await eventually(timeout: .seconds(15)) { !cut.isRunning }, "kubectl logs -f outlived its node's connection")
        cut.stop()
        try await webSocketEdge.start()
        var afterRestart = ""
        #expect(await eventually(timeout: .seconds(30)) {
            afterRestart = (try? await cloud.kubectl("logs", "ws-talker", "-c", "ticker", "--tail=1")) ?? ""
            return afterRestart.hasPrefix("tick ")
        }, "\(afterRestart)")

        // A node that is offline answers at once, naming the node.
        await edge.stop()
        #expect(await eventually(timeout: .seconds(20)) {
            await cloud.jsonPath("{.status.conditions[?(@.type==\"Ready\")].status}", of: "node", "e2e-logs") != "True"
        })
        let started = ContinuousClock.now
        let offline = try await runProcessOffPool("/usr/bin/kubectl", ["--kubeconfig", cloud.kubeconfig, "logs", "talker", "-c", "main"])
        #expect(ContinuousClock.now - started < .seconds(5))
        #expect(offline.status != 0 && offline.output.contains(#"node "e2e-logs" is offline"#), "\(offline.output)")
    }

    /// Python's `repr` of `text` (single-quoted, `\n` escaped), as the script prints it.
    func repr(_ text: String) -> String { "'" + text.replacingOccurrences(of: "\n", with: "\\n") + "'" }
}
