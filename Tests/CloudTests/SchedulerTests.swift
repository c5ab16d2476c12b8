@testable import Cloud
import Foundation
import KubeModel
import Testing
import TestSupport

/// The embedded scheduler against the embedded API server, as its own least-privilege user,
/// driven and checked with kubectl: node selectors, taints and tolerations, resources against
/// allocatable, cordoned nodes, affinity and anti-affinity on the hostname, kube-scheduler's "0/N nodes are
/// available" reasons and events, and a retry when capacity frees up.
@Suite(.serialized) struct SchedulerTests {
    static func node(_ name: String, cpu: String, zone: String, taint: String = "", unschedulable: Bool = false) -> String {
        """
        apiVersion: v1
        kind: Node
        metadata: {name: \(name), labels: {kubernetes.io/hostname: \(name), topology.kubernetes.io/zone: \(zone)}}
        spec: {unschedulable: \(unschedulable)\(taint.isEmpty ? "" : ", taints: [\(taint)]")}
        ---

        """
    }

    static func setStatus(_ server: EmbeddedServer, node: String, cpu: String) async throws {
        let patched = try await server.kubectl("patch", "node", node, "--subresource=status", "--type=merge", "-p",
                                               #"{"status":{"allocatable":{"cpu":"\#(cpu)","memory":"4Gi","pods":"110"},"capacity":{"cpu":"\#(cpu)","memory":"4Gi","pods":"110"}}}"#)
        #expect(patched.status == 0, "\(patched.output)")
    }

    static func pod(_ name: String, _ spec: String) -> String {
        """
        apiVersion: v1
        kind: Pod
        metadata: {name: \(name), labels: {app: \(name.hasPrefix("spread") ? "spread" : name)}}
        spec:
        \(spec.split(separator: "\n").map { "  " + $0 }.joined(separator: "\n"))
        ---

        """
    }

    @Test func pendingPodsAreBoundWhereTheyFitAndThoseThatFitNowhereSayWhyAndWait() async throws {
        let server = try await EmbeddedServer(secure: true)
        defer { removeTemporaryDirectory(server.directory) }
        let nodes = Self.node("n1", cpu: "2", zone: "a") + Self.node("n2", cpu: "1", zone: "b", taint: "{key: dedicated, value: gpu, effect: NoSchedule}")
            + Self.node("n3", cpu: "8", zone: "a", unschedulable: true)
        #expect(try await server.kubectl("apply", "-f", "@input", input: nodes).status == 0)
        for (node, cpu) in [("n1", "2"), ("n2", "1"), ("n3", "8")] { try await Self.setStatus(server, node: node, cpu: cpu) }

        // The scheduler runs as system:kube-scheduler, with only that role's rights.
        let kubeconfig = try server.writeKubeconfig(for: "scheduler", token: server.credentials!.schedulerToken)
        let scheduler = PodScheduler(client: try KubeClient(configuration: try Kubeconfig.load(path: kubeconfig)))
        let running = Task { await scheduler.run() }
        defer { running.cancel() }
        #expect(try await server.kubectl("auth", "can-i", "create", "pods", "--subresource=binding", "--as=system:kube-scheduler").output.hasPrefix("yes"))
        #expect(try await server.kubectl("auth", "can-i", "get", "secrets", "--as=system:kube-scheduler").output.hasPrefix("no"))

        let applied = try await server.kubectl("apply", "-f", "@input", input:
            Self.pod("zoned", "nodeSelector: {topology.kubernetes.io/zone: a}\ncontainers: [{name: c, image: busybox}]")
            + Self.pod("big", "containers: [{name: c, image: busybox, resources: {requests: {cpu: \"4\"}}}]")
            + Self.pod("gpu", "nodeSelector: {topology.kubernetes.io/zone: b}\ntolerations: [{key: dedicated, operator: Equal, value: gpu, effect: NoSchedule}]\ncontainers: [{name: c, image: busybox}]")
            + Self.pod("nowhere", "affinity: {nodeAffinity: {requiredDuringSchedulingIgnoredDuringExecution: {nodeSelectorTerms: [{matchExpressions: [{key: topology.kubernetes.io/zone, operator: In, values: [c]}]}]}}}\ncontainers: [{name: c, image: busybox}]"))
        #expect(applied.status == 0, "\(applied.output)")
        func node(of pod: String) async -> String { (try? await server.kubectl("get", "pod", pod, "-o", "jsonpath={.spec.nodeName}").output) ?? "" }
        #expect(await eventually(timeout: .seconds(20)) {
            let (zoned, gpu) = (await node(of: "zoned"), await node(of: "gpu"))
            return zoned == "n1" && gpu == "n2"
        })
        #expect(try await server.kubectl("get", "pod", "zoned", "-o", #"jsonpath={.status.conditions[?(@.type=="PodScheduled")].status}"#).output == "True")

        // Too big for every node that would take it: the reasons, in kube-scheduler's words.
        let expected = "0/3 nodes are available: 1 Insufficient cpu, 1 node(s) had untolerated taint {dedicated: gpu}, 1 node(s) were unschedulable."
        let reported = await eventually(timeout: .seconds(20)) {
            (try? await server.kubectl("get", "pod", "big", "-o", #"jsonpath={.status.conditions[?(@.type=="PodScheduled")].message}"#).output) == expected
        }
        let big = (try? await server.kubectl("get", "pod", "big", "-o", "yaml").output) ?? ""
        #expect(reported, "\(big)")
        let described = try await server.kubectl("describe", "pod", "big").output
        #expect(described.contains("FailedScheduling") && described.contains(expected), "\(described)")
        #expect(try await server.kubectl("describe", "pod", "zoned").output.contains("Successfully assigned default/zoned to n1"))
        let nowhere = "0/3 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, 1 node(s) had untolerated taint {dedicated: gpu}, 1 node(s) were unschedulable."
        let nowhereReported = await eventually(timeout: .seconds(10)) {
            (try? await server.kubectl("get", "pod", "nowhere", "-o", #"jsonpath={.status.conditions[?(@.type=="PodScheduled")].message}"#).output) == nowhere
        }
        let nowhereMessage = (try? await server.kubectl("get", "pod", "nowhere", "-o", #"jsonpath={.status.conditions[?(@.type=="PodScheduled")].message}"#).output) ?? ""
        #expect(nowhereReported, "\(nowhereMessage)")
        // Capacity frees up (n1 grows): the waiting pod is bound on the change.
        try await Self.setStatus(server, node: "n1", cpu: "8")
        #expect(await eventually(timeout: .seconds(20)) { await node(of: "big") == "n1" })

        // Cordoned: nothing new goes there; uncordoned: it does.
        #expect(try await server.kubectl("cordon", "n1").status == 0)
        #expect(try await server.kubectl("apply", "-f", "@input", input: Self.pod("late", "nodeSelector: {topology.kubernetes.io/zone: a}\ncontainers: [{name: c, image: busybox}]")).status == 0)
        try await Task.sleep(for: .seconds(1))
        #expect(await node(of: "late") == "")
        #expect(try await server.kubectl("uncordon", "n1").status == 0)
        #expect(await eventually(timeout: .seconds(20)) { await node(of: "late") == "n1" })

        // Anti-affinity on the hostname spreads two replicas over two nodes.
        let spread = "tolerations: [{operator: Exists}]\naffinity: {podAntiAffinity: {requiredDuringSchedulingIgnoredDuringExecution: [{topologyKey: kubernetes.io/hostname, labelSelector: {matchLabels: {app: spread}}}]}}\ncontainers: [{name: c, image: busybox}]"
        #expect(try await server.kubectl("apply", "-f", "@input", input: Self.pod("spread-1", spread) + Self.pod("spread-2", spread)).status == 0)
        #expect(await eventually(timeout: .seconds(20)) {
            let (first, second) = (await node(of: "spread-1"), await node(of: "spread-2"))
            return !first.isEmpty && !second.isEmpty && first != second
        })

        // Required pod affinity: next to the pod it names, or Pending with kube's reason.
        let follow = "affinity: {podAffinity: {requiredDuringSchedulingIgnoredDuringExecution: [{topologyKey: kubernetes.io/hostname, labelSelector: {matchLabels: {app: zoned}}}]}}\ncontainers: [{name: c, image: busybox}]"
        let lonely = "affinity: {podAffinity: {requiredDuringSchedulingIgnoredDuringExecution: [{topologyKey: kubernetes.io/hostname, labelSelector: {matchLabels: {app: nobody}}}]}}\ncontainers: [{name: c, image: busybox}]"
        #expect(try await server.kubectl("apply", "-f", "@input", input: Self.pod("follower", follow) + Self.pod("lonely", lonely)).status == 0)
        #expect(await eventually(timeout: .seconds(20)) { await node(of: "follower") == "n1" })
        #expect(await eventually(timeout: .seconds(20)) {
            let message = (try? await server.kubectl("get", "pod", "lonely", "-o", #"jsonpath={.status.conditions[?(@.type=="PodScheduled")].message}"#).output) ?? ""
            return message.contains("didn't match pod affinity rules")
        })

        // A binding for a pod already bound: kube's 409.
        let again = try await server.kubectl("create", "--raw", "/api/v1/namespaces/default/pods/zoned/binding", "-f", "@input",
                                             input: #"{"apiVersion":"v1","kind":"Binding","metadata":{"name":"zoned"},"target":{"kind":"Node","name":"n2"}}"#)
        #expect(again.output.contains(#"pod zoned is already assigned to node \"n1\""#) || again.output.contains(#"pod zoned is already assigned to node "n1""#), "\(again.output)")
        #expect(scheduler.counters.bound >= 6, "\(scheduler.counters)")
        running.cancel()
        await server.server.stop()
    }
}
