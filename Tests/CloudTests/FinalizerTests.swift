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

    @Test func finalizerNamesAreQualifiedNamesAsKubeAPIServerChecksThem() async throws {
        let server = try await EmbeddedServer()
        defer { removeTemporaryDirectory(server.directory) }
        #expect(try await server.kubectl("create", "configmap", "named").status == 0)
        func patch(_ finalizers: String) async throws -> (status: Int32, output: String) {
            try await server.kubectl("patch", "configmap", "named", "--type", "merge", "-p", #"{"metadata":{"finalizers":\#(finalizers)}}"#)
        }
        let bad = try await patch(#"["bad name!"]"#)
        #expect(bad.status != 0 && bad.output.contains(#"ConfigMap "named" is invalid: metadata.finalizers[0]: Invalid value: "bad name!": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"#),
                "\(bad.output)")
        let prefix = try await patch(#"["Example.com/a"]"#)
        #expect(prefix.output.contains(#"metadata.finalizers[0]: Invalid value: "Example.com/a": prefix part a lowercase RFC 1123 subdomain"#), "\(prefix.output)")
        let both = try await patch(#"["orphan","foregroundDeletion"]"#)
        #expect(both.output.contains("finalizer orphan and foregroundDeletion cannot be both set"), "\(both.output)")
        #expect(try await server.kubectl("get", "configmap", "named", "-o", "jsonpath={.metadata.finalizers}").output.isEmpty, "nothing stored")
        // A name without a domain is taken, with kube-apiserver's warning.
        let bare = try await patch(#"["mine"]"#)
        #expect(bare.status == 0 && bare.output.contains(#"Warning: metadata.finalizers: "mine": prefer a domain-qualified finalizer name including a path (/) to avoid accidental conflicts with other finalizer writers"#),
                "\(bare.output)")
        #expect(try await patch("null").status == 0)
        await server.server.stop()
    }
}
