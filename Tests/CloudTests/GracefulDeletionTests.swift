import Foundation
import Testing
import TestSupport

/// Graceful deletion on the embedded server as kube-apiserver does it, through kubectl and the
/// official Python client: a pod bound to a node is marked (`deletionTimestamp`,
/// `deletionGracePeriodSeconds`) and goes with its node's final delete; a shorter grace period
/// shortens the mark; `--force --grace-period=0` removes at once; unbound and finished pods go
/// at once; a namespace being deleted waits for its terminating pods and takes nothing new.
@Suite struct GracefulDeletionTests {
    static func pod(_ name: String, node: String?, namespace: String = "default", grace: Int = 30) -> String {
        """
        apiVersion: v1
        kind: Pod
        metadata: {name: \(name), namespace: \(namespace)}
        spec:
          \(node.map { "nodeName: \($0)" } ?? "")
          terminationGracePeriodSeconds: \(grace)
          containers: [{name: main, image: busybox}]
        ---

        """
    }

    @Test func aPodOnANodeIsMarkedUntilItsFinalDeleteAndShorterGraceOrForceEndItSooner() async throws {
        let server = try await EmbeddedServer(secure: true)
        defer { removeTemporaryDirectory(server.directory) }
        let applied = try await server.kubectl("apply", "-f", "@input", input: Self.pod("bound", node: "edge-1") + Self.pod("forced", node: "edge-1")
                                               + Self.pod("unbound", node: nil) + Self.pod("finished", node: "edge-1"))
        #expect(applied.status == 0, "\(applied.output)")
        #expect(try await server.kubectl("patch", "pod", "finished", "--subresource=status", "--type=merge", "-p", #"{"status":{"phase":"Succeeded"}}"#).status == 0)

        // Bound: marked with its own grace period, shown as Terminating, still there.
        let before = Date()
        let deleted = try await server.kubectl("delete", "pod", "bound", "--wait=false")
        #expect(deleted.status == 0 && deleted.output.contains(#"pod "bound" deleted"#), "\(deleted.output)")
        let marked = try await server.kubectl("get", "pod", "bound", "-o", "jsonpath={.metadata.deletionGracePeriodSeconds} {.metadata.deletionTimestamp}")
        let fields = marked.output.split(separator: " ")
        #expect(fields.first == "30", "\(marked.output)")
        let deadline = try Date(String(fields.last ?? ""), strategy: .iso8601)
        #expect(deadline.timeIntervalSince(before) > 25 && deadline.timeIntervalSince(before) < 40, "deletionTimestamp is now plus the grace period: \(marked.output)")
        #expect(try await server.kubectl("get", "pod", "bound").output.contains("Terminating"))
        // A longer grace period does not extend it; a shorter one shortens it.
        #expect(try await server.kubectl("delete", "pod", "bound", "--wait=false", "--grace-period=60").status == 0)
        #expect(try await server.kubectl("get", "pod", "bound", "-o", "jsonpath={.metadata.deletionGracePeriodSeconds}").output == "30")
        #expect(try await server.kubectl("delete", "pod", "bound", "--wait=false", "--grace-period=5").status == 0)
        #expect(try await server.kubectl("get", "pod", "bound", "-o", "jsonpath={.metadata.deletionGracePeriodSeconds}").output == "5")

        // The node's final delete (grace 0, uid precondition), here by the Python client: an
        // earlier pod's uid is refused with 409 and removes nothing; the right one removes it.
        let uid = try await server.kubectl("get", "pod", "bound", "-o", "jsonpath={.metadata.uid}").output
        let python = try await runProcessOffPool("/usr/bin/env", ["python3", "-c", """
            import sys
            from kubernetes import client, config
            from kubernetes.client.rest import ApiException
            config.load_kube_config(config_file=sys.argv[1])
            core = client.CoreV1Api()
            for uid in ["an-earlier-pod", sys.argv[2]]:
                try:
                    core.delete_namespaced_pod("bound", "default", body=client.V1DeleteOptions(grace_period_seconds=0, preconditions=client.V1Preconditions(uid=uid)))
                    print("deleted", uid == sys.argv[2])
                except ApiException as e:
                    print("refused", e.status, e.reason)
            """, server.directory + "/kubeconfig", uid])
        #expect(python.output.contains("refused 409 Conflict") && python.output.contains("deleted True"), "\(python.output)")
        #expect(try await server.kubectl("get", "pod", "bound").output.contains(#"pods "bound" not found"#))

        // Forced, unbound and finished pods go at once.
        let forced = try await server.kubectl("delete", "pod", "forced", "--force", "--grace-period=0")
        #expect(forced.status == 0, "\(forced.output)")
        #expect(try await server.kubectl("delete", "pod", "unbound", "finished", "--wait=false").status == 0)
        let left = try await server.kubectl("get", "pods", "-o", "name")
        #expect(left.output.isEmpty, "\(left.output)")
        await server.server.stop()
    }

    @Test func aNamespaceBeingDeletedWaitsForItsTerminatingPodsAndTakesNothingNew() async throws {
        let server = try await EmbeddedServer(secure: true)
        defer { removeTemporaryDirectory(server.directory) }
        #expect(try await server.kubectl("create", "namespace", "leaving").status == 0)
        #expect(try await server.kubectl("apply", "-f", "@input", input: Self.pod("stays", node: "edge-1", namespace: "leaving")
                                         + "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: goes, namespace: leaving}\n").status == 0)
        #expect(try await server.kubectl("delete", "namespace", "leaving", "--wait=false").status == 0)
        // Emptied but for the pod its node has not stopped yet.
        #expect(try await server.kubectl("get", "namespace", "leaving", "-o", "jsonpath={.status.phase}").output == "Terminating")
        #expect(try await server.kubectl("get", "configmap", "goes", "-n", "leaving").status != 0)
        #expect(try await server.kubectl("get", "pod", "stays", "-n", "leaving", "-o", "jsonpath={.metadata.deletionGracePeriodSeconds}").output == "30")
        // Nothing new goes in.
        let refused = try await server.kubectl("create", "configmap", "late", "-n", "leaving")
        #expect(refused.output.contains("unable to create new content in namespace leaving because it is being terminated"), "\(refused.output)")
        // The pod's final delete removes it, and with it the namespace.
        #expect(try await server.kubectl("delete", "pod", "stays", "-n", "leaving", "--force", "--grace-period=0").status == 0)
        #expect(try await server.kubectl("get", "namespace", "leaving").output.contains(#"namespaces "leaving" not found"#))
        await server.server.stop()
    }
}
