@testable import Cloud
import Foundation
import KubeModel
import Testing
import TestSupport

/// The embedded ReplicaSet controller as its own user, checked with kubectl: it keeps the
/// replicas, replaces a lost pod, scales down newest and least ready first, reports status, and
/// its pods go with it (garbage collection through their owner reference).
@Suite(.serialized) struct ReplicaSetControllerTests {
    @Test func aReplicaSetKeepsItsReplicasReplacesLostPodsScalesAndTakesItsPodsWithIt() async throws {
        let server = try await EmbeddedServer(secure: true)
        defer { removeTemporaryDirectory(server.directory) }
        let kubeconfig = try server.writeKubeconfig(for: "controller-manager", token: server.credentials!.controllerManagerToken)
        let controller = ReplicaSetController(client: try KubeClient(configuration: try Kubeconfig.load(path: kubeconfig)))
        let running = Task { await controller.run() }
        defer { running.cancel() }
        #expect(try await server.kubectl("auth", "can-i", "create", "pods", "--as=system:kube-controller-manager").output.hasPrefix("yes"))
        #expect(try await server.kubectl("auth", "can-i", "get", "secrets", "--as=system:kube-controller-manager").output.hasPrefix("no"))

        let applied = try await server.kubectl("apply", "-f", "@input", input: """
            apiVersion: apps/v1
            kind: ReplicaSet
            metadata: {name: web}
            spec:
              replicas: 3
              selector: {matchLabels: {app: web}}
              template:
                metadata: {labels: {app: web}}
                spec: {containers: [{name: c, image: busybox}]}
            """)
        #expect(applied.status == 0, "\(applied.output)")
        func pods() async -> [String] {
            ((try? await server.kubectl("get", "pods", "-l", "app=web", "-o", "jsonpath={.items[*].metadata.name}").output) ?? "")
                .split(separator: " ").map(String.init).sorted()
        }
        #expect(await eventually(timeout: .seconds(20)) { await pods().count == 3 })
        let first = await pods()
        #expect(first.allSatisfy { $0.hasPrefix("web-") }, "\(first)")
        let uid = try await server.kubectl("get", "rs", "web", "-o", "jsonpath={.metadata.uid}").output
        let owner = try await server.kubectl("get", "pod", first[0], "-o", "jsonpath={.metadata.ownerReferences[0].kind}/{.metadata.ownerReferences[0].uid}/{.metadata.ownerReferences[0].controller}")
        #expect(owner.output == "ReplicaSet/\(uid)/true", "\(owner.output)")
        #expect(await eventually(timeout: .seconds(10)) {
            (try? await server.kubectl("get", "rs", "web", "-o", "jsonpath={.status.replicas}").output) == "3"
        })
        try await Task.sleep(for: .milliseconds(500))
        #expect(await pods().count == 3, "never more than wanted")

        // A lost pod is replaced.
        #expect(try await server.kubectl("delete", "pod", first[0]).status == 0)
        #expect(await eventually(timeout: .seconds(20)) {
            let now = await pods()
            return now.count == 3 && !now.contains(first[0])
        })
        // Ready pods are reported; scaling down keeps the ready one.
        let ready = (await pods())[0]
        #expect(try await server.kubectl("patch", "pod", ready, "--subresource=status", "--type=merge", "-p",
                                         #"{"status":{"phase":"Running","conditions":[{"type":"Ready","status":"True"}]}}"#).status == 0)
        #expect(await eventually(timeout: .seconds(10)) {
            (try? await server.kubectl("get", "rs", "web", "-o", "jsonpath={.status.readyReplicas}").output) == "1"
        })
        #expect(try await server.kubectl("scale", "rs", "web", "--replicas=1").status == 0)
        #expect(await eventually(timeout: .seconds(20)) { await pods() == [ready] })
        let table = try await server.kubectl("get", "rs", "web").output
        #expect(table.contains("DESIRED") && table.split(separator: "\n").last?.split(separator: " ").prefix(4).joined(separator: " ") == "web 1 1 1", "\(table)")

        // Deleting the ReplicaSet deletes its pods.
        #expect(try await server.kubectl("delete", "rs", "web").status == 0)
        #expect(await eventually(timeout: .seconds(10)) { await pods().isEmpty })
        // Three, one replacement (a pod made while the ReplicaSet itself was going is collected
        // as soon as it is created), and two scaled down.
        #expect(controller.counters.podsCreated >= 4 && controller.counters.podsDeleted == 2, "\(controller.counters)")
        running.cancel()
        await server.server.stop()
    }
}
