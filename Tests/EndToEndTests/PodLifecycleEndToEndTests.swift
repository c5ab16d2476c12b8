import Foundation
import Testing
import TestSupport

/// A pod's life on a real edge as a Kubernetes user sees it, with real cloudcore, edgecore and
/// kubectl: the service-account token kube-apiserver's admission gives it arrives at the edge
/// and acts as the account; `kubectl delete pod` returns once the edge has stopped the pod; a
/// pod on an edge that is away stays Terminating until the edge is back.
@Suite(.serialized) struct PodLifecycleEndToEndTests {
    static let tokenDirectory = "/var/run/secrets/kubernetes.io/serviceaccount"

    /// Without `node`, the embedded scheduler places the pod.
    static func pod(_ name: String, node: String?, grace: Int = 5) -> String {
        """
        apiVersion: v1
        kind: Pod
        metadata: {name: \(name), namespace: default}
        spec:
          \(node.map { "nodeName: \($0)" } ?? "")
          terminationGracePeriodSeconds: \(grace)
          containers:
          - name: main
            image: busybox
            command: ["/bin/sh", "-c", "echo namespace=`cat \(tokenDirectory)/namespace`; echo token=`cat \(tokenDirectory)/token`; exec sleep 3600"]

        """
    }

    /// Whether the API server answers NotFound for the pod.
    static func isGone(_ pod: String, cloud: CloudCoreProcess) async -> Bool {
        let result = try? await runProcessOffPool("/usr/bin/kubectl", ["--kubeconfig", cloud.kubeconfig, "get", "pod", pod])
        return result?.status != 0 && result?.output.contains(#"pods "\#(pod)" not found"#) == true
    }

    /// What the pod's container printed at the edge (the text of its CRI-format log records).
    static func printed(by pod: String, on edge: EdgeCoreProcess) -> String {
        let root = edge.directory + "/edged"
        let logs = (try? FileManager.default.subpathsOfDirectory(atPath: root))?.filter { $0.hasSuffix(".log") } ?? []
        return logs.compactMap { try? String(contentsOfFile: root + "/" + $0, encoding: .utf8) }.filter { $0.contains("token=") }
            .map { log in log.split(separator: "\n").map { $0.split(separator: " ", maxSplits: 3).last.map(String.init) ?? "" }.joined(separator: "\n") + "\n" }
            .joined()
    }

    /// kubectl as the bearer of `token` (against the same server, trusting the same CA).
    static func kubectl(as token: String, _ arguments: [String], cloud: CloudCoreProcess) async throws -> (status: Int32, output: String) {
        let caData = try await cloud.kubectl("config", "view", "--raw", "-o", "jsonpath={.clusters[0].cluster.certificate-authority-data}")
        let server = try await cloud.kubectl("config", "view", "--raw", "-o", "jsonpath={.clusters[0].cluster.server}")
        let caFile = cloud.directory + "/token-ca.crt"
        try Data(base64Encoded: caData.trimmingCharacters(in: .whitespacesAndNewlines))!.write(to: URL(fileURLWithPath: caFile))
        let config = cloud.directory + "/token.kubeconfig"
        try """
            apiVersion: v1
            kind: Config
            clusters: [{name: c, cluster: {server: "\(server)", certificate-authority: \(caFile)}}]
            users: [{name: u, user: {token: "\(token)"}}]
            contexts: [{name: c, context: {cluster: c, user: u, namespace: default}}]
            current-context: c
            """.write(toFile: config, atomically: true, encoding: .utf8)
        chmod(config, 0o600)
        return try await runProcessOffPool("/usr/bin/kubectl", ["--kubeconfig", config] + arguments)
    }

    @Test func theAdmittedTokenReachesTheEdgeActsAsTheAccountAndEndsWithThePodWhoseDeleteWaitsForTheEdge() async throws {
        let cluster = try await EdgeCluster()
        defer { cluster.end() }
        let cloud = cluster.cloud
        let edge = try await cluster.addEdge("e2e-life")
        #expect(await eventually(timeout: .seconds(30)) {
            await cloud.jsonPath("{.status.conditions[?(@.type==\"Ready\")].status}", of: "node", "e2e-life") == "True"
        }, "\(cloud.log)")
        // cloudcore's own event for the node that joined.
        func nodeEvents() async -> String {
            (try? await cloud.kubectl("get", "events", "--field-selector", "involvedObject.kind=Node,involvedObject.name=e2e-life",
                                      "-o", "custom-columns=REASON:.reason,MESSAGE:.message,FROM:.source.component")) ?? ""
        }
        let recorded = await eventually(timeout: .seconds(10)) {
            let events = await nodeEvents()
            return events.contains("NodeReady") && events.contains("Node e2e-life status is now: NodeReady") && events.contains("edgecontroller")
        }
        let shownEvents = await nodeEvents()
        #expect(recorded, "\(shownEvents)")
        // The README's Role for the pod's account.
        try await cloud.kubectl("create", "role", "pod-reader", "--verb=get,list", "--resource=pods")
        try await cloud.kubectl("create", "rolebinding", "default-reads-pods", "--role=pod-reader", "--serviceaccount=default:default")
        try await cloud.apply(Self.pod("reader", node: "e2e-life"))
        #expect(await cloud.jsonPath("{.spec.volumes[0].name}", of: "pod", "reader")?.hasPrefix("kube-api-access-") == true)
        let running = await eventually(timeout: .seconds(40)) { await cloud.jsonPath("{.status.phase}", of: "pod", "reader") == "Running" }
        let status = await cloud.jsonPath("{.status}", of: "pod", "reader") ?? ""
        #expect(running, "\(status)\n\(edge.log)")

        // The container read its namespace and a token from the volume at the usual path.
        #expect(await eventually(timeout: .seconds(10)) { Self.printed(by: "reader", on: edge).contains("namespace=default") }, "\(edge.log)")
        let printed = Self.printed(by: "reader", on: edge)
        let token = try #require(printed.split(separator: "\n").first { $0.hasPrefix("token=") }.map { String($0.dropFirst("token=".count)) })
        #expect(token.split(separator: ".").count == 3, "\(printed)")
        // The token acts as the account, within its role, and only that.
        let whoami = try await Self.kubectl(as: token, ["auth", "whoami", "-o", "jsonpath={.status.userInfo.username}"], cloud: cloud)
        #expect(whoami.output == "system:serviceaccount:default:default", "\(whoami.output)")
        #expect(try await Self.kubectl(as: token, ["get", "pods"], cloud: cloud).output.contains("reader"))
        let secrets = try await Self.kubectl(as: token, ["get", "secrets"], cloud: cloud)
        #expect(secrets.output.contains(#"User "system:serviceaccount:default:default" cannot list resource "secrets""#), "\(secrets.output)")
        #expect(try await Self.kubectl(as: token, ["auth", "can-i", "delete", "pods"], cloud: cloud).output.hasPrefix("no"))

        // The edge's kubelet events, as kubectl describe shows them.
        let shown = await eventually(timeout: .seconds(20)) {
            let described = (try? await cloud.kubectl("describe", "pod", "reader")) ?? ""
            return described.contains("Created container: main") && described.contains("Started container main")
        }
        let described = try await cloud.kubectl("describe", "pod", "reader")
        #expect(shown, "\(described)")
        #expect(described.split(separator: "\n").contains { $0.contains("Normal") && $0.contains("kubelet") && $0.contains("Started container main") },
                "\(described)")
        let watch = try BackgroundProcess("/usr/bin/kubectl", ["--kubeconfig", cloud.kubeconfig, "get", "events", "--watch-only", "-o",
                                                               "custom-columns=REASON:.reason,OBJECT:.involvedObject.name,SOURCE:.source.host,COUNT:.count"],
                                          outputFile: cloud.directory + "/events-watch.log")
        defer { watch.stop() }
        try await Task.sleep(for: .seconds(1))

        // kubectl delete (waiting, as it does by default) returns once the edge stopped the pod
        // and confirmed it: gone in the cloud and at the edge, and the token with it.
        let started = Date()
        let deleted = try await runProcessOffPool("/usr/bin/kubectl", ["--kubeconfig", cloud.kubeconfig, "delete", "pod", "reader", "--timeout=60s"])
        #expect(deleted.status == 0 && deleted.output.contains(#"pod "reader" deleted"#), "\(deleted.output)")
        #expect(Date().timeIntervalSince(started) < 30)
        #expect(await Self.isGone("reader", cloud: cloud))
        #expect(await eventually(timeout: .seconds(10)) { await edge.local("/api/v1/namespaces/default/pods/reader")?.status == 404 })
        let left = try runProcess("/usr/bin/pgrep", ["-f", "--", edge.directory + "/edged/"]).output.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(left.isEmpty, "no container of the pod is left: \(left)")
        #expect(try await Self.kubectl(as: token, ["get", "pods"], cloud: cloud).output.contains("Unauthorized"))
        // The watch saw the edge's Killing event for the pod, from the node.
        #expect(await eventually(timeout: .seconds(10)) {
            let seen = (try? String(contentsOfFile: cloud.directory + "/events-watch.log", encoding: .utf8)) ?? ""
            return seen.split(separator: "\n").contains { $0.hasPrefix("Killing") && $0.contains("reader") && $0.contains("e2e-life") }
        }, "\((try? String(contentsOfFile: cloud.directory + "/events-watch.log", encoding: .utf8)) ?? "")")
    }

    @Test func aPodOnAnEdgeThatIsAwayStaysTerminatingUntilTheEdgeIsBack() async throws {
        let cluster = try await EdgeCluster()
        defer { cluster.end() }
        let cloud = cluster.cloud
        let edge = try await cluster.addEdge("e2e-away")
        // No node named: cloudcore's scheduler binds it to the edge, which runs it.
        #expect(await eventually(timeout: .seconds(30)) {
            await cloud.jsonPath("{.status.conditions[?(@.type==\"Ready\")].status}", of: "node", "e2e-away") == "True"
        })
        try await cloud.apply(Self.pod("away", node: nil, grace: 2))
        #expect(await eventually(timeout: .seconds(40)) { await cloud.jsonPath("{.status.phase}", of: "pod", "away") == "Running" }, "\(edge.log)")
        #expect(await cloud.jsonPath("{.spec.nodeName}", of: "pod", "away") == "e2e-away")
        #expect(try await cloud.kubectl("describe", "pod", "away").contains("Successfully assigned default/away to e2e-away"))

        // The edge goes away (its containers keep running); the pod is deleted meanwhile.
        #expect(await edge.stop() == 0)
        try await cloud.kubectl("delete", "pod", "away", "--wait=false")
        try await Task.sleep(for: .seconds(6))
        #expect(await cloud.jsonPath("{.metadata.deletionGracePeriodSeconds}", of: "pod", "away") == "2", "still there, past its grace period")
        #expect(try await cloud.kubectl("get", "pod", "away").contains("Terminating"))

        // Back: the edge stops it and the cloud removes it.
        try await edge.start()
        #expect(await eventually(timeout: .seconds(40)) { await Self.isGone("away", cloud: cloud) }, "\(edge.log)")
        #expect(await eventually(timeout: .seconds(10)) {
            ((try? runProcess("/usr/bin/pgrep", ["-f", "--", edge.directory + "/edged/"]))?.output ?? "x").isEmpty
        })
    }
}
