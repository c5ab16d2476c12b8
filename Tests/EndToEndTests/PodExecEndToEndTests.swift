import Foundation
import Testing
import TestSupport

/// `kubectl exec` and `kubectl cp` into pods on a real edge (process runtime), through
/// cloudcore's embedded API server and the node's channel: streams kept apart, the exit code,
/// stdin and its end, a terminal driven in tmux, the Python client, and the errors kube words.
@Suite(.serialized) struct PodExecEndToEndTests {
    static let pod = """
        apiVersion: v1
        kind: Pod
        metadata: {name: shell, namespace: default}
        spec:
          nodeName: e2e-exec
          terminationGracePeriodSeconds: 1
          containers:
          - name: main
            image: busybox
            command: ["/bin/sh", "-c", "exec sleep 3600"]

        """

    /// kubectl with its stdout and stderr apart, and its exit status.
    static func kubectl(_ cloud: CloudCoreProcess, _ arguments: String, input: String? = nil) async throws -> (status: Int32, out: String, err: String) {
        let directory = cloud.directory
        let id = UUID().uuidString.prefix(8)
        let (out, err) = (directory + "/\(id).out", directory + "/\(id).err")
        var command = "/usr/bin/kubectl --kubeconfig \(cloud.kubeconfig) \(arguments) >\(out) 2>\(err)"
        if let input {
            try input.write(toFile: directory + "/\(id).in", atomically: true, encoding: .utf8)
            command += " <\(directory)/\(id).in"
        }
        let result = try await runProcessOffPool("/bin/sh", ["-c", command])
        return (result.status, (try? String(contentsOfFile: out, encoding: .utf8)) ?? "", (try? String(contentsOfFile: err, encoding: .utf8)) ?? "")
    }

    @Test func kubectlExecKeepsStreamsApartReturnsTheExitCodeTakesStdinCopiesAndDrivesATerminal() async throws {
        let cluster = try await EdgeCluster()
        defer { cluster.end() }
        let cloud = cluster.cloud
        let edge = try await cluster.addEdge("e2e-exec")
        #expect(await eventually(timeout: .seconds(30)) {
            await cloud.jsonPath("{.status.conditions[?(@.type==\"Ready\")].status}", of: "node", "e2e-exec") == "True"
        }, "\(cloud.log)")
        do {
            try await run(cloud: cloud, cluster: cluster)
        } catch {
            Issue.record("\(error)\ncloudcore:\n\(cloud.log.suffix(3000))\nedgecore:\n\(edge.log.suffix(3000))")
        }
    }

    private func run(cloud: CloudCoreProcess, cluster: EdgeCluster) async throws {
        try await cloud.apply(Self.pod)
        #expect(await eventually(timeout: .seconds(30)) { await cloud.jsonPath("{.status.phase}", of: "pod", "shell") == "Running" })

        // stdout and stderr apart; the command's exit code is kubectl's.
        let split = try await Self.kubectl(cloud, "exec shell -- sh -c 'echo out; echo err >&2; exit 3'")
        #expect(split.status == 3, "\(split)")
        #expect(split.out == "out\n", "\(split)")
        #expect(split.err.hasPrefix("err\n"), "\(split)")
        let fine = try await Self.kubectl(cloud, "exec shell -- true")
        #expect(fine.status == 0 && fine.out.isEmpty, "\(fine)")
        // stdin, and its end (cat ends when stdin does).
        let echoed = try await Self.kubectl(cloud, "exec -i shell -- cat", input: "through stdin\nsecond line\n")
        #expect(echoed.status == 0 && echoed.out == "through stdin\nsecond line\n", "\(echoed)")
        // The container's environment and working directory.
        let environment = try await Self.kubectl(cloud, "exec shell -- sh -c 'echo $HOSTNAME'")
        #expect(environment.out == "shell\n", "\(environment)")

        // kubectl cp in and out (tar over exec, stdin closed at the end of the archive).
        let local = cloud.directory + "/cp-source.txt"
        let payload = (0..<2000).map { "copied line \($0)\n" }.joined()
        try payload.write(toFile: local, atomically: true, encoding: .utf8)
        let inside = cloud.directory + "/cp-inside.txt"
        let copiedIn = try await Self.kubectl(cloud, "cp \(local) shell:\(inside)")
        #expect(copiedIn.status == 0, "\(copiedIn)")
        #expect((try? String(contentsOfFile: inside, encoding: .utf8)) == payload)
        let back = cloud.directory + "/cp-back.txt"
        let copiedOut = try await Self.kubectl(cloud, "cp shell:\(inside) \(back)")
        #expect(copiedOut.status == 0, "\(copiedOut)")
        #expect((try? String(contentsOfFile: back, encoding: .utf8)) == payload)

        // Errors as kube words them.
        let unknown = try await Self.kubectl(cloud, "exec shell -c nope -- true")
        #expect(unknown.status != 0 && unknown.err.contains("container nope is not valid for pod shell"), "\(unknown)")
        let missing = try await Self.kubectl(cloud, "exec absent -- true")
        #expect(missing.status != 0 && missing.err.contains(#"pods "absent" not found"#), "\(missing)")

        // The official Python client over v4.channel.k8s.io: output and the exit code.
        let python = try await runProcessOffPool("/usr/bin/env", ["python3", "-c", """
            import sys
            from kubernetes import client, config
            from kubernetes.stream import stream
            config.load_kube_config(config_file=sys.argv[1])
            api = client.CoreV1Api()
            session = stream(api.connect_get_namespaced_pod_exec, "shell", "default", command=["sh", "-c", "echo from python; exit 7"],
                             stderr=True, stdin=False, stdout=True, tty=False, _preload_content=False)
            session.run_forever(timeout=20)
            print("out", repr(session.read_stdout()))
            print("code", session.returncode)
            """, cloud.kubeconfig])
        #expect(python.output.contains("out 'from python\\n'"), "\(python.output)")
        #expect(python.output.contains("code 7"), "\(python.output)")

        // kubectl attach: what the running container writes from now on.
        try await cloud.apply("""
            apiVersion: v1
            kind: Pod
            metadata: {name: ticker, namespace: default}
            spec:
              nodeName: e2e-exec
              terminationGracePeriodSeconds: 1
              containers:
              - name: ticker
                image: busybox
                command: ["/bin/sh", "-c", "i=0; while :; do echo \\"tick $i\\"; echo \\"tock $i\\" >&2; i=$((i+1)); sleep 0.05; done"]

            """)
        #expect(await eventually(timeout: .seconds(30)) { await cloud.jsonPath("{.status.phase}", of: "pod", "ticker") == "Running" })
        let attached = cloud.directory + "/attach.out"
        let attachedErrors = cloud.directory + "/attach.err"
        let attach = try BackgroundProcess("/bin/sh", ["-c", "/usr/bin/kubectl --kubeconfig \(cloud.kubeconfig) attach ticker 2>\(attachedErrors)"], outputFile: attached)
        #expect(await eventually(timeout: .seconds(15)) {
            ((try? String(contentsOfFile: attached, encoding: .utf8)) ?? "").split(separator: "\n").filter { $0.hasPrefix("tick ") }.count >= 10
        })
        attach.stop()
        let ticks = ((try? String(contentsOfFile: attached, encoding: .utf8)) ?? "").split(separator: "\n").compactMap { Int($0.dropFirst("tick ".count)) }
        #expect(!ticks.isEmpty && ticks == Array(ticks[0]..<ticks[0] + ticks.count), "\(ticks)")
        #expect(((try? String(contentsOfFile: attachedErrors, encoding: .utf8)) ?? "").contains("tock "), "stderr comes on its own channel")
        // Attaching stdin is refused (kubectl then tries SPDY, which is not served: it shows that error).
        let stdinAttach = try await Self.kubectl(cloud, "attach -i ticker", input: "x\n")
        #expect(stdinAttach.status != 0, "\(stdinAttach)")

        // A terminal in tmux: type, see the echo, resize, exit.
        let session = "exec-\(UUID().uuidString.prefix(6))"
        let tmux = "/usr/bin/tmux"
        // Started without an output pipe: the tmux server it forks would hold one open (and a
        // test reading it to its end would wait for ever).
        let starter = try BackgroundProcess(tmux, ["new-session", "-d", "-s", session, "-x", "100", "-y", "30",
                                                   "/usr/bin/kubectl --kubeconfig \(cloud.kubeconfig) exec -it shell -- sh; sleep 30"])
        _ = starter
        defer { _ = try? runProcess(tmux, ["kill-session", "-t", session]) }
        /// Whether the terminal shows `text` within 15 s; and what it showed.
        func shows(_ text: String) async -> (Bool, String) {
            var shown = ""
            let found = await eventually(timeout: .seconds(15)) { () async -> Bool in
                shown = (try? await runProcessOffPool(tmux, ["capture-pane", "-p", "-t", session]).output) ?? ""
                return shown.contains(text)
            }
            return (found, shown)
        }
        func type(_ text: String) async throws { _ = try await runProcessOffPool(tmux, ["send-keys", "-t", session, text, "Enter"]) }
        try await Task.sleep(for: .seconds(1))
        try await type("echo $((6 * 7))")
        let answer = await shows("\n42")
        #expect(answer.0, "\(answer.1)")
        try await type("stty size")
        let size = await shows("30 100")
        #expect(size.0, "\(size.1)")
        _ = try await runProcessOffPool(tmux, ["resize-window", "-t", session, "-x", "120", "-y", "40"])
        try await Task.sleep(for: .milliseconds(500))
        try await type("stty size")
        let resized = await shows("40 120")
        #expect(resized.0, "\(resized.1)")
        try await type("exit 5")
        let exited = await shows("command terminated with exit code 5")
        #expect(exited.0, "\(exited.1)")

        // 100 exec sessions at once, to pods on two nodes.
        _ = try await cluster.addEdge("e2e-exec-2")
        try await cloud.apply(Self.pod.replacingOccurrences(of: "name: shell", with: "name: shell2").replacingOccurrences(of: "e2e-exec", with: "e2e-exec-2"))
        #expect(await eventually(timeout: .seconds(30)) { await cloud.jsonPath("{.status.phase}", of: "pod", "shell2") == "Running" })
        let results = try await withThrowingTaskGroup(of: (Int, Int32, String).self) { group in
            for index in 0..<100 {
                group.addTask {
                    let result = try await Self.kubectl(cloud, "exec \(index.isMultiple(of: 2) ? "shell" : "shell2") -- sh -c 'sleep 1; echo session \(index)'")
                    return (index, result.status, result.out + result.err)
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        let failed = results.filter { $0.1 != 0 || $0.2 != "session \($0.0)\n" }
        #expect(results.count == 100 && failed.isEmpty, "\(failed.prefix(5))")
    }
}
