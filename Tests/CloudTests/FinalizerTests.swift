import Cloud
import Foundation
import KubeModel
import Testing
import TestSupport

/// Finalizers, as kube-apiserver keeps them: a delete marks the object, an update removing the
/// last finalizer completes it, and none may be added meanwhile.
@Suite struct FinalizerTests {
    @Test func finalizersHoldADeletedObjectUntilTheLastIsRemoved() async throws {
        let server = try await EmbeddedServer()
        defer { removeTemporaryDirectory(server.directory) }
        #expect(try await server.kubectl("create", "configmap", "held").status == 0)
        #expect(try await server.kubectl("patch", "configmap", "held", "--type", "merge", "-p", #"{"metadata":{"finalizers":["example.com/a","example.com/b"]}}"#).status == 0)
        let deleted = try await server.kubectl("delete", "configmap", "held", "--wait=false")
        #expect(deleted.status == 0, "\(deleted.output)")
        let marked = try JSONValue(parsing: try await server.kubectl("get", "configmap", "held", "-o", "json").output)
        #expect(marked[path: ["metadata", "deletionTimestamp"]]?.stringValue?.isEmpty == false, "still there, marked")
        #expect(marked[path: ["metadata", "deletionGracePeriodSeconds"]] == .number("0"))
        let adding = try await server.kubectl("patch", "configmap", "held", "--type", "merge", "-p", #"{"metadata":{"finalizers":["example.com/a","example.com/b","example.com/c"]}}"#)
        #expect(adding.output.contains(#"ConfigMap "held" is invalid: metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{"example.com/c"}"#),
                "\(adding.output)")
        #expect(try await server.kubectl("patch", "configmap", "held", "--type", "merge", "-p", #"{"metadata":{"finalizers":["example.com/b"]}}"#).status == 0)
        #expect(try await server.kubectl("get", "configmap", "held").status == 0, "one finalizer left")
        #expect(try await server.kubectl("patch", "configmap", "held", "--type", "merge", "-p", #"{"metadata":{"finalizers":null}}"#).status == 0)
        let gone = try await server.kubectl("get", "configmap", "held")
        #expect(gone.output.contains(#"configmaps "held" not found"#), "\(gone.output)")
        await server.server.stop()
    }
}
