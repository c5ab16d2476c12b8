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
            additionalPrinterColumns:
            - {name: Size, type: integer, jsonPath: .spec.size}
            - {name: Ready, type: boolean, jsonPath: .status.ready}
            - {name: Created, type: date, jsonPath: .metadata.creationTimestamp}
            - {name: Phase, type: string, jsonPath: '.status.conditions[?(@.type=="Ready")].reason'}
            schema:
              openAPIV3Schema:
                type: object
                properties:
                  spec: {type: object, properties: {size: {type: integer}}}
                  status: {type: object, properties: {ready: {type: boolean}, conditions: {type: array, items: {type: object, x-kubernetes-preserve-unknown-fields: true}}}}
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
        let status = try await server.kubectl("patch", "widget", "blue", "--subresource", "status", "--type", "merge", "-p",
                                              #"{"status":{"ready":true,"conditions":[{"type":"Synced","reason":"Old"},{"type":"Ready","reason":"AllGood"}]}}"#)
        #expect(status.status == 0, "\(status.output)")
        #expect(try await server.kubectl("get", "widget", "blue", "-o", "jsonpath={.status.ready}").output == "true")
        // kubectl explain reads the kind's schema.
        let explained = try await server.kubectl("explain", "widgets.spec")
        #expect(explained.status == 0 && explained.output.contains("size") && explained.output.contains("<integer>"), "\(explained.output)")
        #expect(try await server.kubectl("explain", "widget").output.contains("KIND:"))
        // kubectl get shows the definition's printer columns.
        let table = try await server.kubectl("get", "widgets").output.split(separator: "\n").map { $0.split(separator: " ", omittingEmptySubsequences: true) }
        #expect(table.first == ["NAME", "SIZE", "READY", "CREATED", "PHASE"], "\(table)")
        #expect(table.dropFirst().first?.prefix(3) == ["blue", "3", "true"] && table.dropFirst().first?.last == "AllGood", "\(table)")

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

    @Test func customResourcesArePrunedDefaultedAndValidatedAgainstTheirSchema() async throws {
        let server = try await EmbeddedServer()
        defer { removeTemporaryDirectory(server.directory) }
        let crd = """
            apiVersion: apiextensions.k8s.io/v1
            kind: CustomResourceDefinition
            metadata: {name: gadgets.example.com}
            spec:
              group: example.com
              scope: Namespaced
              names: {plural: gadgets, singular: gadget, kind: Gadget}
              versions:
              - name: v1
                served: true
                storage: true
                schema:
                  openAPIV3Schema:
                    type: object
                    properties:
                      spec:
                        type: object
                        required: [size]
                        properties:
                          size: {type: integer, minimum: 1, maximum: 10}
                          color: {type: string, enum: [red, blue], default: red}
                          name: {type: string, maxLength: 5, pattern: "^[a-z]+$"}
                          tags: {type: array, maxItems: 2, items: {type: string}}
                          extra: {type: object, x-kubernetes-preserve-unknown-fields: true}
            """
        #expect(try await server.kubectl("apply", "-f", "@input", input: crd).status == 0)

        // Unknown fields pruned (kubectl not validating), defaults filled in, preserved subtrees kept.
        let good = try await server.kubectl("apply", "--validate=false", "-f", "@input", input: """
            apiVersion: example.com/v1
            kind: Gadget
            metadata: {name: ok, namespace: default}
            spec: {size: 3, unknown: dropped, extra: {anything: [1, 2]}}
            """)
        #expect(good.status == 0, "\(good.output)")
        let stored = try JSONValue(parsing: try await server.kubectl("get", "gadget", "ok", "-o", "json").output)
        #expect(stored[path: ["spec", "color"]] == .string("red"))
        #expect(stored[path: ["spec", "unknown"]] == nil)
        #expect(stored[path: ["spec", "extra", "anything"]] == .array([.number("1"), .number("2")]))
        // kubectl's default (--validate=strict) refuses unknown fields, as kube-apiserver does.
        let strict = try await server.kubectl("apply", "-f", "@input", input: """
            apiVersion: example.com/v1
            kind: Gadget
            metadata: {name: typo, namespace: default}
            spec: {size: 3, colour: red}
            """)
        #expect(strict.status != 0 && strict.output.contains(#"Gadget in version "v1" cannot be handled as a Gadget: strict decoding error: unknown field "spec.colour""#),
                "\(strict.output)")

        // Every violation, in kube-apiserver's words, and nothing stored.
        let bad = try await httpRequest(.POST, port: server.port, path: "/apis/example.com/v1/namespaces/default/gadgets", body: """
            {"apiVersion":"example.com/v1","kind":"Gadget","metadata":{"name":"bad"},"spec":{"size":"big","color":"pink","name":"TOOLONG","tags":["a","b","c"]}}
            """)
        #expect(bad.status == 422)
        let status = try JSONValue(parsing: try await bad.text())
        let message = status["message"]?.stringValue ?? ""
        #expect(message.hasPrefix(#"Gadget.example.com "bad" is invalid: ["#), "\(message)")
        for part in [#"spec.size: Invalid value: "big": spec.size in body must be of type integer: "string""#,
                     #"spec.color: Unsupported value: "pink": supported values: "red", "blue""#,
                     #"spec.name: Too long: may not be more than 5 bytes"#,
                     #"spec.name: Invalid value: "TOOLONG": spec.name in body should match '^[a-z]+$'"#,
                     #"spec.tags: Too many: 3: must have at most 2 items"#] {
            #expect(message.contains(part), "\(part) in \(message)")
        }
        let causes = status[path: ["details", "causes"]]?.arrayValue ?? []
        #expect(causes.count == 5)
        #expect(causes.compactMap { $0["reason"]?.stringValue }.sorted()
                == ["FieldValueInvalid", "FieldValueNotSupported", "FieldValueTooLong", "FieldValueTooMany", "FieldValueTypeInvalid"], "\(causes)")
        let missing = try await httpRequest(.POST, port: server.port, path: "/apis/example.com/v1/namespaces/default/gadgets",
                                            body: #"{"apiVersion":"example.com/v1","kind":"Gadget","metadata":{"name":"empty"},"spec":{"size":11}}"#)
        let missingMessage = try JSONValue(parsing: try await missing.text())["message"]?.stringValue ?? ""
        #expect(missingMessage == #"Gadget.example.com "empty" is invalid: spec.size: Invalid value: 11: spec.size in body should be less than or equal to 10"#,
                "\(missingMessage)")
        let viaKubectl = try await server.kubectl("apply", "-f", "@input", input: """
            apiVersion: example.com/v1
            kind: Gadget
            metadata: {name: nosize, namespace: default}
            spec: {color: blue}
            """)
        #expect(viaKubectl.status != 0 && viaKubectl.output.contains(#"The Gadget "nosize" is invalid: spec.size: Required value"#), "\(viaKubectl.output)")
        // Server-side apply goes through the same schema.
        let applied = try await server.kubectl("apply", "--server-side", "--validate=false", "-f", "@input", input: """
            apiVersion: example.com/v1
            kind: Gadget
            metadata: {name: ssa, namespace: default}
            spec: {size: 2, unknown: dropped}
            """)
        #expect(applied.status == 0, "\(applied.output)")
        let ssa = try JSONValue(parsing: try await server.kubectl("get", "gadget", "ssa", "-o", "json").output)
        #expect(ssa[path: ["spec", "color"]] == .string("red") && ssa[path: ["spec", "unknown"]] == nil, "\(ssa.serialized)")
        let ssaInvalid = try await server.kubectl("apply", "--server-side", "-f", "@input", input: """
            apiVersion: example.com/v1
            kind: Gadget
            metadata: {name: ssa, namespace: default}
            spec: {size: 20}
            """)
        #expect(ssaInvalid.status != 0 && ssaInvalid.output.contains("spec.size in body should be less than or equal to 10"), "\(ssaInvalid.output)")
        _ = try await server.kubectl("delete", "gadget", "ssa")
        #expect(try await server.kubectl("get", "gadgets", "-o", "name").output.trimmingCharacters(in: .whitespacesAndNewlines) == "gadget.example.com/ok")
        await server.server.stop()
    }

    /// The rest of the schema's checks kube-apiserver makes: multipleOf, uniqueItems, property
    /// counts, string formats, and the duplicates x-kubernetes-list-type forbids, each in its
    /// words and with its cause's reason; valid values of every format pass.
    @Test func formatsCountsMultiplesAndListTypesAreCheckedAsKubeAPIServerChecksThem() async throws {
        let server = try await EmbeddedServer()
        defer { removeTemporaryDirectory(server.directory) }
        let crd = """
            apiVersion: apiextensions.k8s.io/v1
            kind: CustomResourceDefinition
            metadata: {name: probes.example.com}
            spec:
              group: example.com
              scope: Namespaced
              names: {plural: probes, singular: probe, kind: Probe}
              versions:
              - name: v1
                served: true
                storage: true
                schema:
                  openAPIV3Schema:
                    type: object
                    properties:
                      spec:
                        type: object
                        properties:
                          step: {type: integer, multipleOf: 5}
                          zones: {type: array, uniqueItems: true, items: {type: string}}
                          labels: {type: object, minProperties: 1, maxProperties: 2, additionalProperties: {type: string}}
                          at: {type: string, format: date-time}
                          day: {type: string, format: date}
                          address: {type: string, format: ipv4}
                          network: {type: string, format: cidr}
                          id: {type: string, format: uuid}
                          mac: {type: string, format: mac}
                          host: {type: string, format: hostname}
                          blob: {type: string, format: byte}
                          size: {type: string, format: int32}
                          tags: {type: array, x-kubernetes-list-type: set, items: {type: string}}
                          ports:
                            type: array
                            x-kubernetes-list-type: map
                            x-kubernetes-list-map-keys: [name]
                            items: {type: object, properties: {name: {type: string}, port: {type: integer}}}
            """
        #expect(try await server.kubectl("apply", "-f", "@input", input: crd).status == 0)
        let probes = "/apis/example.com/v1/namespaces/default/probes"

        let valid = try await httpRequest(.POST, port: server.port, path: probes, body: """
            {"apiVersion":"example.com/v1","kind":"Probe","metadata":{"name":"good"},"spec":{"step":15,"zones":["a","b"],"labels":{"k":"v"},
             "at":"2026-12-07T08:00:00.123Z","day":"2024-02-29","address":"10.0.0.1","network":"fd00::/64","id":"5f0c4a3e-1b2c-4d5e-8f90-0a1b2c3d4e5f",
             "mac":"02:42:ac:11:00:02","host":"edge-1.example.com","blob":"aGVsbG8=","size":"anything","tags":["x","y"],
             "ports":[{"name":"http","port":80},{"name":"https","port":443}]}}
            """)
        let validBody = try await valid.text()
        #expect(valid.status == 201, "\(validBody)")

        let bad = try await httpRequest(.POST, port: server.port, path: probes, body: """
            {"apiVersion":"example.com/v1","kind":"Probe","metadata":{"name":"bad"},"spec":{"step":7,"zones":["a","a"],"labels":{"a":"1","b":"2","c":"3"},
             "at":"yesterday","day":"2023-02-29","address":"10.0.0.256","network":"10.0.0.0/33","id":"not-a-uuid","mac":"02:42","host":"-bad-",
             "blob":"not base64!","tags":["x","y","x","x"],"ports":[{"name":"http","port":80},{"name":"http","port":8080}]}}
            """)
        let status = try JSONValue(parsing: try await bad.text())
        #expect(bad.status == 422, "\(status)")
        let message = status["message"]?.stringValue ?? ""
        let expected: [(String, String)] = [
            (#"spec.step: Invalid value: 7: spec.step in body should be a multiple of 5"#, "FieldValueInvalid"),
            (#"spec.zones: Invalid value: "": spec.zones in body shouldn't contain duplicates"#, "FieldValueInvalid"),
            (#"spec.labels: Too many: 3: must have at most 2 items"#, "FieldValueTooMany"),
            (#"spec.at: Invalid value: "yesterday": spec.at in body must be of type date-time: "yesterday""#, "FieldValueTypeInvalid"),
            (#"spec.day: Invalid value: "2023-02-29": spec.day in body must be of type date: "2023-02-29""#, "FieldValueTypeInvalid"),
            (#"spec.address: Invalid value: "10.0.0.256": spec.address in body must be of type ipv4: "10.0.0.256""#, "FieldValueTypeInvalid"),
            (#"spec.network: Invalid value: "10.0.0.0/33": spec.network in body must be of type cidr: "10.0.0.0/33""#, "FieldValueTypeInvalid"),
            (#"spec.id: Invalid value: "not-a-uuid": spec.id in body must be of type uuid: "not-a-uuid""#, "FieldValueTypeInvalid"),
            (#"spec.mac: Invalid value: "02:42": spec.mac in body must be of type mac: "02:42""#, "FieldValueTypeInvalid"),
            (#"spec.host: Invalid value: "-bad-": spec.host in body must be of type hostname: "-bad-""#, "FieldValueTypeInvalid"),
            (#"spec.blob: Invalid value: "not base64!": spec.blob in body must be of type byte: "not base64!""#, "FieldValueTypeInvalid"),
            (#"spec.tags[2]: Duplicate value: "x""#, "FieldValueDuplicate"),
            (#"spec.ports[1]: Duplicate value: map[string]interface {}{"name":"http"}"#, "FieldValueDuplicate"),
        ]
        for (part, _) in expected { #expect(message.contains(part), "\(part) in \(message)") }
        let causes = status[path: ["details", "causes"]]?.arrayValue ?? []
        #expect(causes.count == expected.count, "\(causes)")
        #expect(causes.compactMap { $0["reason"]?.stringValue }.sorted() == expected.map(\.1).sorted(), "\(causes)")
        #expect(!message.contains("spec.tags[3]"), "a duplicate value is reported once")
        #expect(try await httpRequest(port: server.port, path: probes + "/bad").status == 404, "nothing stored")

        let few = try await httpRequest(.POST, port: server.port, path: probes,
                                        body: #"{"apiVersion":"example.com/v1","kind":"Probe","metadata":{"name":"few"},"spec":{"labels":{}}}"#)
        let fewMessage = try JSONValue(parsing: try await few.text())["message"]?.stringValue ?? ""
        #expect(fewMessage == #"Probe.example.com "few" is invalid: spec.labels: Invalid value: 0: spec.labels in body should have at least 1 properties"#, "\(fewMessage)")
        await server.server.stop()
    }

    @Test func aDefinitionsVersionsShareTheirObjectsEachReadWithItsOwnAPIVersion() async throws {
        let server = try await EmbeddedServer()
        defer { removeTemporaryDirectory(server.directory) }
        let crd = """
            apiVersion: apiextensions.k8s.io/v1
            kind: CustomResourceDefinition
            metadata: {name: gizmos.example.com}
            spec:
              group: example.com
              scope: Cluster
              names: {plural: gizmos, singular: gizmo, kind: Gizmo}
              versions:
              - {name: v1, served: true, storage: true, schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}}
              - {name: v1beta1, served: true, storage: false, schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}}
              - {name: v1alpha1, served: false, storage: false, schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}}
            """
        #expect(try await server.kubectl("apply", "-f", "@input", input: crd).status == 0)
        #expect(try await server.kubectl("get", "crd", "gizmos.example.com", "-o", "jsonpath={.status.storedVersions}").output == #"["v1"]"#)
        let created = try await httpRequest(.POST, port: server.port, path: "/apis/example.com/v1beta1/gizmos",
                                            body: #"{"apiVersion":"example.com/v1beta1","kind":"Gizmo","metadata":{"name":"g"},"spec":{"x":1}}"#)
        #expect(created.status == 201)
        let asV1 = try JSONValue(parsing: try await httpRequest(port: server.port, path: "/apis/example.com/v1/gizmos/g").text())
        #expect(asV1["apiVersion"] == .string("example.com/v1") && asV1[path: ["spec", "x"]] == .number("1"))
        let listed = try JSONValue(parsing: try await httpRequest(port: server.port, path: "/apis/example.com/v1beta1/gizmos").text())
        #expect(listed["apiVersion"] == .string("example.com/v1beta1"))
        #expect(listed["items"]?.arrayValue?.map { $0["apiVersion"] } == [.string("example.com/v1beta1")])
        #expect(try await server.kubectl("get", "gizmos.v1beta1.example.com", "g", "-o", "jsonpath={.apiVersion}").output == "example.com/v1beta1")
        #expect(try await httpRequest(port: server.port, path: "/apis/example.com/v1alpha1/gizmos").status == 404, "a version not served")
        await server.server.stop()
    }

    @Test func aDefinitionThatIsNotStructuralOrMisnamedIsRefusedWithKubeAPIServersMessages() async throws {
        let server = try await EmbeddedServer()
        defer { removeTemporaryDirectory(server.directory) }
        let refused = try await httpRequest(.POST, port: server.port, path: "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", body: """
            {"apiVersion":"apiextensions.k8s.io/v1","kind":"CustomResourceDefinition","metadata":{"name":"wrong.example.com"},
             "spec":{"group":"example.com","scope":"Namespaced","names":{"plural":"things","kind":"Thing"},
              "versions":[{"name":"v1","served":true,"storage":true,"schema":{"openAPIV3Schema":{"type":"object","properties":{"spec":{"properties":{"a":{"type":"string"}}}}}}},
                          {"name":"v2","served":true,"storage":true}]}}
            """)
        #expect(refused.status == 422)
        let message = try JSONValue(parsing: try await refused.text())["message"]?.stringValue ?? ""
        for part in [#"CustomResourceDefinition.apiextensions.k8s.io "wrong.example.com" is invalid: ["#,
                     #"metadata.name: Invalid value: "wrong.example.com": must be spec.names.plural+"."+spec.group"#,
                     "spec.versions: Invalid value:", "must have exactly one version marked as storage version",
                     "spec.versions[0].schema.openAPIV3Schema.properties[spec].type: Required value: must not be empty for specified object fields",
                     "spec.versions[1].schema.openAPIV3Schema: Required value: schemas are required"] {
            #expect(message.contains(part), "\(part) in \(message)")
        }
        #expect(try await server.kubectl("get", "crd", "wrong.example.com").status != 0, "nothing stored")
        await server.server.stop()
    }

    @Test func theScaleSubresourceReadsAndWritesTheReplicasItsDefinitionNames() async throws {
        let server = try await EmbeddedServer()
        defer { removeTemporaryDirectory(server.directory) }
        let crd = """
            apiVersion: apiextensions.k8s.io/v1
            kind: CustomResourceDefinition
            metadata: {name: pools.example.com}
            spec:
              group: example.com
              scope: Namespaced
              names: {plural: pools, singular: pool, kind: Pool}
              versions:
              - name: v1
                served: true
                storage: true
                subresources:
                  status: {}
                  scale: {specReplicasPath: .spec.replicas, statusReplicasPath: .status.replicas, labelSelectorPath: .status.selector}
                schema:
                  openAPIV3Schema:
                    type: object
                    properties:
                      spec: {type: object, properties: {replicas: {type: integer}}}
                      status: {type: object, properties: {replicas: {type: integer}, selector: {type: string}}}
            """
        #expect(try await server.kubectl("apply", "-f", "@input", input: crd).status == 0)
        #expect(try await server.kubectl("apply", "-f", "@input", input: """
            apiVersion: example.com/v1
            kind: Pool
            metadata: {name: workers, namespace: default}
            spec: {replicas: 1}
            """).status == 0)
        _ = try await server.kubectl("patch", "pool", "workers", "--subresource", "status", "--type", "merge", "-p", #"{"status":{"replicas":1,"selector":"app=workers"}}"#)
        let scale = try JSONValue(parsing: try await httpRequest(port: server.port, path: "/apis/example.com/v1/namespaces/default/pools/workers/scale").text())
        #expect(scale["kind"] == .string("Scale") && scale[path: ["spec", "replicas"]] == .number("1") && scale[path: ["status", "selector"]] == .string("app=workers"),
                "\(scale.serialized)")
        let scaled = try await server.kubectl("scale", "pool", "workers", "--replicas=5")
        #expect(scaled.status == 0, "\(scaled.output)")
        #expect(try await server.kubectl("get", "pool", "workers", "-o", "jsonpath={.spec.replicas}").output == "5")
        #expect(try await server.kubectl("api-resources", "--api-group", "example.com", "-o", "wide").status == 0)
        await server.server.stop()
    }

    @Test func kubeEdgesKindsAreDefinitionsInstalledAtStartFromTheFilesInTheRepository() async throws {
        // The embedded copies are the files users apply by hand to a real cluster.
        let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../deploy/crds").standardized.path
        let files = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(".yaml") }.sorted()
        #expect(files == KubeEdgeDefinitions.files.map(\.name))
        for (name, yaml) in KubeEdgeDefinitions.files {
            let text = try String(contentsOfFile: directory + "/" + name, encoding: .utf8)
            #expect(text.trimmingCharacters(in: .newlines) == yaml, "deploy/crds/\(name) differs from what cloudcore installs: run make crds")
        }

        let server = try await EmbeddedServer()
        defer { removeTemporaryDirectory(server.directory) }
        let listed = try await server.kubectl("get", "crd", "-o", "name").output.split(separator: "\n").sorted()
        #expect(listed == ["customresourcedefinition.apiextensions.k8s.io/clusterobjectsyncs.reliablesyncs.kubeedge.io",
                           "customresourcedefinition.apiextensions.k8s.io/devicemodels.devices.kubeedge.io",
                           "customresourcedefinition.apiextensions.k8s.io/devices.devices.kubeedge.io",
                           "customresourcedefinition.apiextensions.k8s.io/objectsyncs.reliablesyncs.kubeedge.io"])
        // Applying the files again, as on a real cluster, changes nothing.
        #expect(try await server.kubectl("apply", "-f", directory).status == 0)
        let device = try await server.kubectl("apply", "-f", "@input", input: """
            apiVersion: devices.kubeedge.io/v1beta1
            kind: Device
            metadata: {name: thermometer, namespace: default}
            spec:
              deviceModelRef: {name: thermometer-model}
              nodeName: edge-1
              protocol: {protocolName: modbus, configData: {slaveID: 1}}
              properties: [{name: temperature, desired: {value: "20"}, visitors: {register: HoldingRegister}}]
            """)
        #expect(device.status == 0, "\(device.output)")
        let table = try await server.kubectl("get", "devices").output.split(separator: "\n").map { $0.split(separator: " ", omittingEmptySubsequences: true) }
        #expect(table.first == ["NAME", "NODE", "MODEL", "AGE"] && table.dropFirst().first?.prefix(3) == ["thermometer", "edge-1", "thermometer-model"], "\(table)")
        #expect(try await server.kubectl("get", "device", "thermometer", "-o", "jsonpath={.spec.properties[0].visitors.register}").output == "HoldingRegister",
                "protocol-specific settings are kept")
        let badModel = try await server.kubectl("apply", "-f", "@input", input: """
            apiVersion: devices.kubeedge.io/v1beta1
            kind: DeviceModel
            metadata: {name: m, namespace: default}
            spec: {protocol: modbus, properties: [{name: temperature, accessMode: WriteOnly}]}
            """)
        #expect(badModel.status != 0 && badModel.output.contains(#"Unsupported value: "WriteOnly""#), "\(badModel.output)")
        await server.server.stop()
    }
}
