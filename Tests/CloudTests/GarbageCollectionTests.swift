import Cloud
import Foundation
import KubeModel
import Testing
import TestSupport

/// Garbage collection through kubectl: dependents go with their owner (background and
/// foreground, down a chain) or stay without the reference (orphan); a namespace's deletion
/// empties it and removes it; the cluster's own namespaces may not be deleted.
@Suite struct GarbageCollectionTests {
    static func dependent(_ name: String, of owner: String, uid: String) -> String {
        """
        apiVersion: v1
        kind: ConfigMap
        metadata:
          name: \(name)
          ownerReferences: [{apiVersion: v1, kind: ConfigMap, name: \(owner), uid: "\(uid)", blockOwnerDeletion: true}]
        data: {k: v}

        """
    }

    @Test func ownersTakeTheirDependentsAsThePropagationPolicySays() async throws {
        let server = try await EmbeddedServer()
        defer { removeTemporaryDirectory(server.directory) }
        func uid(_ name: String) async throws -> String {
            try await server.kubectl("get", "configmap", name, "-o", "jsonpath={.metadata.uid}").output
        }
        func exists(_ name: String) async throws -> Bool { try await server.kubectl("get", "configmap", name).status == 0 }
        for (owner, policy) in [("bg", "background"), ("fg", "foreground"), ("or", "orphan")] {
            #expect(try await server.kubectl("create", "configmap", owner).status == 0)
            let ownerUID = try await uid(owner)
            #expect(try await server.kubectl("apply", "-f", "@input", input: Self.dependent("\(owner)-child", of: owner, uid: ownerUID)).status == 0)
            let childUID = try await uid("\(owner)-child")
            #expect(try await server.kubectl("apply", "-f", "@input", input: Self.dependent("\(owner)-grandchild", of: "\(owner)-child", uid: childUID)).status == 0)
            let deleted = try await server.kubectl("delete", "configmap", owner, "--cascade=\(policy)")
            #expect(deleted.status == 0, "\(deleted.output)")
            #expect(try await exists(owner) == false)
            if policy == "orphan" {
                #expect(try await exists("\(owner)-child"), "orphaned, not deleted")
                let references = try await server.kubectl("get", "configmap", "\(owner)-child", "-o", "jsonpath={.metadata.ownerReferences}")
                #expect(references.output.isEmpty, "the reference to the deleted owner is gone: \(references.output)")
                #expect(try await exists("\(owner)-grandchild"))
            } else {
                #expect(try await exists("\(owner)-child") == false, "\(policy): the dependent went with its owner")
                #expect(try await exists("\(owner)-grandchild") == false, "\(policy): and its own dependent")
            }
        }
        // An unrelated ConfigMap stays.
        #expect(try await server.kubectl("create", "configmap", "bystander").status == 0)
        #expect(try await exists("bystander"))
        await server.server.stop()
    }

    @Test func deletingANamespaceDeletesWhatIsInItThenTheNamespace() async throws {
        let server = try await EmbeddedServer()
        defer { removeTemporaryDirectory(server.directory) }
        #expect(try await server.kubectl("create", "namespace", "scratch").status == 0)
        #expect(try await server.kubectl("create", "configmap", "c", "-n", "scratch").status == 0)
        #expect(try await server.kubectl("create", "secret", "generic", "s", "--from-literal=k=v", "-n", "scratch").status == 0)
        #expect(try await server.kubectl("create", "configmap", "outside").status == 0)
        let deleted = try await server.kubectl("delete", "namespace", "scratch")
        #expect(deleted.status == 0 && deleted.output.contains(#"namespace "scratch" deleted"#), "\(deleted.output)")
        #expect(try await server.kubectl("get", "namespace", "scratch").output.contains(#"namespaces "scratch" not found"#))
        // Created again, it has none of the old contents.
        #expect(try await server.kubectl("create", "namespace", "scratch").status == 0)
        #expect(try await server.kubectl("get", "configmap", "c", "-n", "scratch").status != 0)
        #expect(try await server.kubectl("get", "secret", "s", "-n", "scratch").status != 0)
        #expect(try await server.kubectl("get", "configmap", "outside").status == 0)
        let protected = try await server.kubectl("delete", "namespace", "default")
        #expect(protected.output.contains(#"namespaces "default" is forbidden: this namespace may not be deleted"#), "\(protected.output)")
        await server.server.stop()
    }

    @Test func anObjectCreatedForAnOwnerThatIsGoneIsCollected() async throws {
        let server = try await EmbeddedServer()
        defer { removeTemporaryDirectory(server.directory) }
        #expect(try await server.kubectl("create", "configmap", "owner").status == 0)
        let uid = try await server.kubectl("get", "configmap", "owner", "-o", "jsonpath={.metadata.uid}").output
        func dependent(_ name: String, uid: String) -> String {
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: \(name)\n  ownerReferences: [{apiVersion: v1, kind: ConfigMap, name: owner, uid: \"\(uid)\"}]\n"
        }
        // An existing owner keeps it; an owner of that name with another uid (deleted and made
        // again), or none, does not: it is collected at once, as the garbage collector would.
        #expect(try await server.kubectl("apply", "-f", "@input", input: dependent("kept", uid: uid)).status == 0)
        #expect(try await server.kubectl("apply", "-f", "@input", input: dependent("stale", uid: "0f0f0f0f-0000-0000-0000-000000000000")).status == 0)
        #expect(try await server.kubectl("get", "configmap", "kept").status == 0)
        #expect(try await server.kubectl("get", "configmap", "stale").output.contains(#"configmaps "stale" not found"#))
        await server.server.stop()
    }
}
