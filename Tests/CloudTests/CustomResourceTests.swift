import Cloud
import Foundation
import KubeModel
import Testing
import TestSupport

/// CustomResourceDefinitions on the embedded server, driven by kubectl as a user would.
@Suite struct CustomResourceTests {
    static let widgetsCRD = """
        apiVersion: apiextensions.k8s.io/v1
        kind: CustomResourceDefinition
        metadata: {name: widgets.example.com}
        spec:
          group: example.com
          scope: Namespaced
          names: {plural: widgets, singular: widget, kind: Widget, listKind: WidgetList, shortNames: [wg]}
          versions:
          - name: v1
            served: true
            storage: true
            subresources: {status: {}}
            schema:
              openAPIV3Schema:
                type: object
                properties:
                  spec: {type: object, properties: {size: {type: integer}}}
                  status: {type: object, properties: {ready: {type: boolean}}}
        """

    @Test func aDefinitionAppliedWithKubectlServesItsKindAtOnceAndDeletingItRemovesItsObjects() async throws {
        let server = try await EmbeddedServer()
        defer { removeTemporaryDirectory(server.directory) }
        let applied = try await server.kubectl("apply", "-f", "@input", input: Self.widgetsCRD)
        #expect(applied.status == 0, "\(applied.output)")
        let established = try await server.kubectl("get", "crd", "widgets.example.com", "-o", #"jsonpath={.status.conditions[?(@.type=="Established")].status}"#)
        #expect(established.output == "True", "\(established.output)")
        #expect(try await server.kubectl("api-resources", "--api-group", "example.com").output.contains("widgets"))

        let widget = """
            apiVersion: example.com/v1
            kind: Widget
            metadata: {name: blue, namespace: default}
            spec: {size: 3}
            """
        let created = try await server.kubectl("apply", "-f", "@input", input: widget)
        #expect(created.status == 0, "\(created.output)")
        #expect(try await server.kubectl("get", "wg", "blue", "-o", "jsonpath={.spec.size}").output == "3")
        #expect(try await server.kubectl("get", "widgets", "-o", "name").output.trimmingCharacters(in: .whitespacesAndNewlines) == "widget.example.com/blue")
        let status = try await server.kubectl("patch", "widget", "blue", "--subresource", "status", "--type", "merge", "-p", #"{"status":{"ready":true}}"#)
        #expect(status.status == 0, "\(status.output)")
        #expect(try await server.kubectl("get", "widget", "blue", "-o", "jsonpath={.status.ready}").output == "true")

        // Deleting the definition deletes its objects: defined again, it has none.
        let deleted = try await server.kubectl("delete", "crd", "widgets.example.com")
        #expect(deleted.status == 0, "\(deleted.output)")
        let gone = try await httpRequest(port: server.port, path: "/apis/example.com/v1/namespaces/default/widgets")
        #expect(gone.status == 404)
        #expect(try await server.kubectl("apply", "-f", "@input", input: Self.widgetsCRD).status == 0)
        let list = try JSONValue(parsing: try await httpRequest(port: server.port, path: "/apis/example.com/v1/namespaces/default/widgets").text())
        #expect(list["items"]?.arrayValue?.isEmpty == true, "\(list.serialized)")
        await server.server.stop()
    }
}
