import Cloud
import Foundation
import KubeModel
import Testing
import TestSupport

/// The embedded API server speaking Kubernetes protobuf, as client-go does, checked with
/// protoc (bodies it encoded, responses it decodes) and kubectl (the JSON side of the same objects).
@Suite struct APIProtobufTests {
    static let protobuf = "application/vnd.kubernetes.protobuf"

    @Test func aBuiltInKindIsCreatedReadListedWatchedAndRefusedInProtobuf() async throws {
        let server = try await EmbeddedServer()
        defer { removeTemporaryDirectory(server.directory) }
        let port = server.port
        let configMaps = "/api/v1/namespaces/default/configmaps"

        // A watch in protobuf, opened first.
        let watch = try await httpRequest(port: port, path: configMaps + "?watch=true&timeoutSeconds=20", headers: [("Accept", Self.protobuf)])
        #expect(watch.headers.first(name: "Content-Type") == Self.protobuf + ";stream=watch")

        // Created from protoc's encoding, answered in protobuf.
        let raw = try Protoc.encode(#"metadata { name: "from-go" labels { key: "tier" value: "edge" } } data { key: "mode" value: "protobuf" }"#,
                                    as: "k8s.io.api.core.v1.ConfigMap")
        let created = try await httpRequest(.POST, port: port, path: configMaps, bytes: KubeProtobuf.bytes(of: .init(apiVersion: "v1", kind: "ConfigMap", raw: raw)),
                                            headers: [("Content-Type", Self.protobuf), ("Accept", Self.protobuf + ", application/json")])
        #expect(created.status == 201)
        #expect(created.headers.first(name: "Content-Type") == Self.protobuf)
        let envelope = try KubeProtobuf.envelope(of: try await created.bytes())
        #expect(envelope.apiVersion == "v1" && envelope.kind == "ConfigMap")
        let text = try Protoc.decode(envelope.raw, as: "k8s.io.api.core.v1.ConfigMap")
        #expect(text.contains(#"name: "from-go""#) && text.contains("resourceVersion: ") && text.contains("creationTimestamp {"), "\(text)")

        // kubectl (JSON) sees what protobuf wrote; a protobuf read equals the JSON read.
        #expect(try await server.kubectl("get", "configmap", "from-go", "-o", "jsonpath={.data.mode}/{.metadata.labels.tier}").output == "protobuf/edge")
        let asJSON = try JSONValue(parsing: try await httpRequest(port: port, path: configMaps + "/from-go").text())
        let read = try await httpRequest(port: port, path: configMaps + "/from-go", headers: [("Accept", Self.protobuf)])
        let asProtobuf = try KubeProtobuf.builtIn.decodeObject(try await read.bytes())
        #expect(KubeProtobufTests.differences(asJSON, asProtobuf).isEmpty, "\(KubeProtobufTests.differences(asJSON, asProtobuf))")

        // A list in protobuf.
        _ = try await server.kubectl("create", "configmap", "second", "--from-literal=k=v")
        let list = try await httpRequest(port: port, path: configMaps, headers: [("Accept", Self.protobuf)])
        let listed = try KubeProtobuf.envelope(of: try await list.bytes())
        #expect(listed.kind == "ConfigMapList")
        let listText = try Protoc.decode(listed.raw, as: "k8s.io.api.core.v1.ConfigMapList")
        #expect(listText.contains(#"name: "from-go""#) && listText.contains(#"name: "second""#), "\(listText)")

        // The watch saw both, as length-prefixed WatchEvents.
        var pending: [UInt8] = []
        var events: [(type: String, object: JSONValue)] = []
        for try await chunk in watch.body {
            pending += chunk.readableBytesView
            events += try KubeProtobuf.builtIn.watchEvents(from: &pending)
            if events.count >= 2 { break }
        }
        #expect(events.map(\.type) == ["ADDED", "ADDED"])
        #expect(events.map { $0.object[path: ["metadata", "name"]]?.stringValue } == ["from-go", "second"])

        // Errors are a protobuf Status.
        let missing = try await httpRequest(port: port, path: configMaps + "/absent", headers: [("Accept", Self.protobuf)])
        #expect(missing.status == 404)
        let status = try KubeProtobuf.envelope(of: try await missing.bytes())
        #expect(status.kind == "Status")
        let statusText = try Protoc.decode(status.raw, as: "k8s.io.apimachinery.pkg.apis.meta.v1.Status")
        #expect(statusText.contains(#"reason: "NotFound""#) && statusText.contains("code: 404"), "\(statusText)")

        // Bad bodies and kinds without a protobuf form.
        let garbage = try await httpRequest(.POST, port: port, path: configMaps, bytes: [0x6b, 0x38, 0x73, 0x00, 0x0a, 0x40],
                                            headers: [("Content-Type", Self.protobuf)])
        #expect(garbage.status == 400)
        #expect(try await garbage.text().contains("the request body is not a Kubernetes protobuf object"))
        let podEnvelope = KubeProtobuf.bytes(of: .init(apiVersion: "v1", kind: "Pod", raw: try Protoc.encode(#"metadata { name: "p" }"#, as: "k8s.io.api.core.v1.Pod")))
        let wrongKind = try await httpRequest(.POST, port: port, path: configMaps, bytes: podEnvelope, headers: [("Content-Type", Self.protobuf)])
        #expect(wrongKind.status == 400)
        #expect(try await wrongKind.text().contains("kind Pod does not belong at configmaps"))
        let devices = "/apis/devices.kubeedge.io/v1beta1/namespaces/default/devices"
        let onlyProtobuf = try await httpRequest(port: port, path: devices, headers: [("Accept", Self.protobuf)])
        #expect(onlyProtobuf.status == 406)
        #expect(try await onlyProtobuf.text().contains("only the following media types are accepted: application/json"))
        let either = try await httpRequest(port: port, path: devices, headers: [("Accept", Self.protobuf + ", application/json")])
        #expect(either.status == 200 && either.headers.first(name: "Content-Type") == "application/json")
        await server.server.stop()
    }

    @Test func aKubeClientInProtobufSeesWhatAJSONClientSees() async throws {
        let server = try await EmbeddedServer()
        defer { removeTemporaryDirectory(server.directory) }
        let kubeconfig = try Kubeconfig.load(path: server.directory + "/kubeconfig")
        let protobuf = try KubeClient(configuration: kubeconfig, encoding: .protobuf)
        let json = try KubeClient(configuration: kubeconfig)
        let pods = APIResource(Kube.Pod.self)
        let pod = try JSONValue(parsing: """
            {"metadata":{"name":"web","labels":{"app":"web"}},"spec":{"automountServiceAccountToken":false,"containers":[{"name":"c","image":"nginx",
             "ports":[{"containerPort":80}],"resources":{"limits":{"cpu":"100m","memory":"64Mi"}},
             "readinessProbe":{"httpGet":{"path":"/","port":"http"},"periodSeconds":5}}],
             "volumes":[{"name":"scratch","emptyDir":{}},{"name":"cfg","configMap":{"name":"app","defaultMode":420}}]}}
            """)
        let watched = Task {
            var events: [KubeClient.WatchEvent] = []
            struct Enough: Error {}
            do {
                try await protobuf.watch(pods, namespace: "default", resourceVersion: "0", timeoutSeconds: 20) { event in
                    events.append(event)
                    if events.count == 2 { throw Enough() }
                }
            } catch is Enough {}
            return events
        }
        let created = try await protobuf.create(pods, namespace: "default", pod)
        #expect(created[path: ["spec", "automountServiceAccountToken"]] == .bool(false))
        #expect(created[path: ["spec", "volumes"]]?.arrayValue?.first?["emptyDir"] == .object(JSONObject()))
        let seenByJSON = try await json.get(pods, namespace: "default", name: "web")
        #expect(KubeProtobufTests.differences(seenByJSON, try await protobuf.get(pods, namespace: "default", name: "web")).isEmpty)
        #expect(seenByJSON[path: ["spec", "containers"]]?.arrayValue?.first?[path: ["readinessProbe", "httpGet", "port"]] == .string("http"))
        var changed = created
        changed.set(.string("front"), at: ["metadata", "labels", "tier"])
        let updated = try await protobuf.update(pods, namespace: "default", changed)
        #expect(updated[path: ["metadata", "labels", "tier"]] == .string("front"))
        let (items, _) = try await protobuf.list(pods, namespace: "default")
        #expect(items.count == 1 && items[0][path: ["metadata", "labels", "tier"]] == .string("front"))
        let events = try await watched.value
        #expect(events.map(\.type) == ["ADDED", "MODIFIED"], "\(events)")
        // A missing object is the server's Status, decoded from protobuf.
        await #expect(throws: APIError.notFound("pods", "absent")) { _ = try await protobuf.get(pods, namespace: "default", name: "absent") }
        // Kinds without a protobuf form go as JSON.
        let device = try await protobuf.create(APIResource(Kube.Device.self), namespace: "default",
                                               try JSONValue(parsing: #"{"metadata":{"name":"sensor"},"spec":{"nodeName":"edge-1"}}"#))
        #expect(device[path: ["metadata", "name"]] == .string("sensor"))
        _ = try await protobuf.delete(pods, namespace: "default", name: "web")
        await server.server.stop()
    }

    /// A protobuf list equals the JSON list item by item (protoc decodes it), whether its items
    /// are encoded for it or come from the message cache; a change is seen at once (the cache
    /// is keyed by the object's revision), selectors apply, and the cache keeps to its bound.
    @Test func protobufListsEqualJSONListsThroughTheMessageCache() async throws {
        let server = try await EmbeddedServer(protobufCacheBytes: 4096)
        defer { removeTemporaryDirectory(server.directory) }
        let port = server.port
        let configMaps = "/api/v1/namespaces/default/configmaps"
        for index in 0..<12 {
            _ = try await server.kubectl("create", "configmap", "cm-\(index)", "--from-literal=index=\(index)", "--from-literal=pad=\(String(repeating: "x", count: 200))")
        }
        _ = try await server.kubectl("label", "configmap", "cm-3", "cm-4", "role=picked")

        func protobufItems(_ query: String = "") async throws -> [JSONValue] {
            let response = try await httpRequest(port: port, path: configMaps + query, headers: [("Accept", Self.protobuf)])
            let bytes = try await response.bytes()
            #expect(response.status == 200 && response.headers.first(name: "Content-Type") == Self.protobuf)
            let envelope = try KubeProtobuf.envelope(of: bytes)
            #expect(envelope.kind == "ConfigMapList" && envelope.apiVersion == "v1")
            // protoc reads what we wrote, and our decoder agrees with it on the item count.
            let text = try Protoc.decode(envelope.raw, as: "k8s.io.api.core.v1.ConfigMapList")
            let list = try KubeProtobuf.builtIn.json(fromMessage: envelope.raw, type: "k8s.io.api.core.v1.ConfigMapList")
            let items = list["items"]?.arrayValue ?? []
            #expect(text.components(separatedBy: "items {").count - 1 == items.count, "\(text)")
            #expect(list[path: ["metadata", "resourceVersion"]]?.stringValue?.isEmpty == false)
            return items.map { item in
                var item = item
                item["apiVersion"] = .string("v1")
                item["kind"] = .string("ConfigMap")
                return item
            }
        }
        func jsonItems(_ query: String = "") async throws -> [JSONValue] {
            try JSONValue(parsing: try await httpRequest(port: port, path: configMaps + query).text())["items"]?.arrayValue ?? []
        }
        func expectSame(_ protobuf: [JSONValue], _ json: [JSONValue]) {
            #expect(protobuf.count == json.count)
            for (left, right) in zip(json, protobuf) {
                let differences = KubeProtobufTests.differences(left, right)
                #expect(differences.isEmpty, "\(differences)")
            }
        }
        let first = try await protobufItems()
        expectSame(first, try await jsonItems())
        #expect(first.count == 12)
        let second = try await protobufItems()
        expectSame(second, first)
        let figures = server.server.protobufCacheFigures
        #expect(figures.hits > 0 && figures.misses >= 12, "\(figures)")
        #expect(figures.bytes <= 4096, "the cache holds \(figures.bytes) bytes over its 4096")

        _ = try await server.kubectl("patch", "configmap", "cm-5", "--type", "merge", "-p", #"{"data":{"index":"changed"}}"#)
        let third = try await protobufItems()
        expectSame(third, try await jsonItems())
        #expect(third.first { $0[path: ["metadata", "name"]] == .string("cm-5") }?[path: ["data", "index"]] == .string("changed"))

        let picked = try await protobufItems("?labelSelector=role%3Dpicked")
        expectSame(picked, try await jsonItems("?labelSelector=role%3Dpicked"))
        #expect(picked.compactMap { $0[path: ["metadata", "name"]]?.stringValue } == ["cm-3", "cm-4"])
        await server.server.stop()
    }

    /// One built-in kind as a protoc text-format body (without its metadata) and where it lives.
    struct Sample {
        let resource: APIResource
        let name: String
        let body: String
        var type: String { KubeProtobuf.builtIn.messageName(apiVersion: resource.groupVersion, kind: resource.kind)! }
        var collection: String {
            let base = resource.group.isEmpty ? "/api/v1" : "/apis/\(resource.group)/\(resource.version)"
            return resource.namespaced ? "\(base)/namespaces/default/\(resource.plural)" : "\(base)/\(resource.plural)"
        }
    }

    static let samples: [Sample] = [
        Sample(resource: resource("namespaces"), name: "pb-ns", body: ""),
        Sample(resource: resource("nodes"), name: "pb-node", body: #"spec { podCIDR: "10.9.0.0/24" }"#),
        Sample(resource: resource("pods"), name: "pb-pod",
               body: #"spec { containers { name: "c" image: "busybox" ports { containerPort: 80 } resources { limits { key: "cpu" value { string: "100m" } } } } }"#),
        Sample(resource: resource("configmaps"), name: "pb-cm", body: #"data { key: "k" value: "v" } binaryData { key: "b" value: "\001\002" }"#),
        Sample(resource: resource("secrets"), name: "pb-secret", body: #"data { key: "password" value: "s3cret" } type: "Opaque""#),
        Sample(resource: resource("services"), name: "pb-svc",
               body: #"spec { ports { name: "http" port: 80 targetPort { type: 1 strVal: "web" } } selector { key: "app" value: "web" } }"#),
        Sample(resource: resource("endpoints"), name: "pb-svc", body: #"subsets { addresses { ip: "10.9.0.7" } ports { name: "http" port: 8080 } }"#),
        Sample(resource: resource("events"), name: "pb-event",
               body: #"involvedObject { kind: "Pod" namespace: "default" name: "pb-pod" } reason: "Pulled" message: "pulled" type: "Normal" count: 1"#),
        Sample(resource: resource("serviceaccounts"), name: "pb-sa", body: #"automountServiceAccountToken: false"#),
        Sample(resource: resource("leases"), name: "pb-lease", body: #"spec { holderIdentity: "edge-9" leaseDurationSeconds: 40 }"#),
        Sample(resource: resource("clusterroles"), name: "pb-clusterrole", body: #"rules { verbs: "get" apiGroups: "" resources: "pods" }"#),
        Sample(resource: resource("clusterrolebindings"), name: "pb-clusterrolebinding",
               body: #"subjects { kind: "User" name: "alice" } roleRef { apiGroup: "rbac.authorization.k8s.io" kind: "ClusterRole" name: "pb-clusterrole" }"#),
        Sample(resource: resource("roles"), name: "pb-role", body: #"rules { verbs: "list" apiGroups: "" resources: "configmaps" }"#),
        Sample(resource: resource("rolebindings"), name: "pb-rolebinding",
               body: #"subjects { kind: "Group" name: "developers" } roleRef { apiGroup: "rbac.authorization.k8s.io" kind: "Role" name: "pb-role" }"#),
        Sample(resource: resource("deployments"), name: "pb-deploy",
               body: #"spec { replicas: 2 selector { matchLabels { key: "app" value: "pb" } } "#
                   + #"template { metadata { labels { key: "app" value: "pb" } } spec { containers { name: "c" image: "busybox" } } } }"#),
        Sample(resource: resource("replicasets"), name: "pb-rs",
               body: #"spec { replicas: 1 selector { matchLabels { key: "app" value: "pb-rs" } } "#
                   + #"template { metadata { labels { key: "app" value: "pb-rs" } } spec { containers { name: "c" image: "busybox" } } } }"#),
        Sample(resource: resource("daemonsets"), name: "pb-ds",
               body: #"spec { selector { matchLabels { key: "app" value: "pb-ds" } } "#
                   + #"template { metadata { labels { key: "app" value: "pb-ds" } } spec { containers { name: "c" image: "busybox" } nodeSelector { key: "edge" value: "yes" } } } }"#),
        Sample(resource: resource("controllerrevisions"), name: "pb-revision", body: #"revision: 3"#),
        Sample(resource: resource("jobs"), name: "pb-job",
               body: #"spec { completions: 3 parallelism: 2 manualSelector: true selector { matchLabels { key: "app" value: "pb-job" } } "#
                   + #"template { metadata { labels { key: "app" value: "pb-job" } } spec { containers { name: "c" image: "busybox" } restartPolicy: "Never" } } }"#),
        Sample(resource: resource("cronjobs"), name: "pb-cronjob",
               body: #"spec { schedule: "*/5 * * * *" jobTemplate { spec { template { spec { containers { name: "c" image: "busybox" } restartPolicy: "OnFailure" } } } } }"#),
        Sample(resource: resource("customresourcedefinitions"), name: "gadgets.example.com",
               body: #"spec { group: "example.com" names { plural: "gadgets" singular: "gadget" kind: "Gadget" listKind: "GadgetList" } scope: "Namespaced" "#
                   + #"versions { name: "v1" served: true storage: true schema { openAPIV3Schema { type: "object" xKubernetesPreserveUnknownFields: true } } } }"#),
    ]

    static func resource(_ plural: String) -> APIResource { APIResource.builtIn.first { $0.plural == plural }! }

    /// Every built-in kind is created and updated from bodies protoc encoded, patched, read,
    /// listed and deleted with protobuf answers; each answer decodes with protoc and equals what
    /// the JSON API returns.
    @Test func everyBuiltInKindIsCreatedUpdatedPatchedListedAndDeletedInProtobuf() async throws {
        let server = try await EmbeddedServer()
        defer { removeTemporaryDirectory(server.directory) }
        let port = server.port
        #expect(Set(Self.samples.map(\.resource.plural)) == Set(APIResource.builtIn.filter { !$0.createOnly }.map(\.plural)), "a sample for each built-in kind")
        let accept = [("Accept", Self.protobuf)]
        let sends = [("Content-Type", Self.protobuf), ("Accept", Self.protobuf)]
        for sample in Self.samples {
            let kind = sample.resource.kind
            func envelope(_ text: String) throws -> [UInt8] {
                KubeProtobuf.bytes(of: .init(apiVersion: sample.resource.groupVersion, kind: kind, raw: try Protoc.encode(text, as: sample.type)))
            }
            func answer(_ response: TestHTTPResponse, _ status: Int, _ step: String) async throws -> (text: String, object: JSONValue) {
                let bytes = try await response.bytes()
                #expect(response.status == status, "\(kind) \(step): \(String(decoding: bytes, as: UTF8.self))")
                #expect(response.headers.first(name: "Content-Type") == Self.protobuf, "\(kind) \(step)")
                let opened = try KubeProtobuf.envelope(of: bytes)
                return (try Protoc.decode(opened.raw, as: sample.type), try KubeProtobuf.builtIn.decodeObject(bytes))
            }
            func asJSON() async throws -> JSONValue {
                try JSONValue(parsing: try await httpRequest(port: port, path: sample.collection + "/" + sample.name).text())
            }

            let created = try await answer(try await httpRequest(.POST, port: port, path: sample.collection,
                                                                 bytes: try envelope(#"metadata { name: "\#(sample.name)" } "# + sample.body), headers: sends),
                                           201, "create")
            #expect(created.text.contains(#"name: "\#(sample.name)""#), "\(kind): \(created.text)")
            let createdDifferences = KubeProtobufTests.differences(try await asJSON(), created.object)
            #expect(createdDifferences.isEmpty, "\(kind): \(createdDifferences)")

            let version = created.object[path: ["metadata", "resourceVersion"]]?.stringValue ?? ""
            let updated = try await answer(try await httpRequest(.PUT, port: port, path: sample.collection + "/" + sample.name,
                                                                 bytes: try envelope(#"metadata { name: "\#(sample.name)" resourceVersion: "\#(version)" labels { key: "step" value: "updated" } } "# + sample.body),
                                                                 headers: sends),
                                           200, "update")
            #expect(updated.text.contains(#"value: "updated""#), "\(kind): \(updated.text)")
            #expect(updated.object[path: ["metadata", "labels", "step"]] == .string("updated"))

            let patched = try await answer(try await httpRequest(.PATCH, port: port, path: sample.collection + "/" + sample.name,
                                                                 body: #"{"metadata":{"labels":{"step":"patched"}}}"#,
                                                                 headers: [("Content-Type", "application/merge-patch+json"), ("Accept", Self.protobuf)]),
                                           200, "patch")
            #expect(patched.text.contains(#"value: "patched""#), "\(kind): \(patched.text)")
            let read = try await answer(try await httpRequest(port: port, path: sample.collection + "/" + sample.name, headers: accept), 200, "read")
            let readDifferences = KubeProtobufTests.differences(try await asJSON(), read.object)
            #expect(readDifferences.isEmpty, "\(kind): \(readDifferences)")
            #expect(read.object[path: ["metadata", "labels", "step"]] == .string("patched"))

            let list = try await httpRequest(port: port, path: sample.collection, headers: accept)
            let listed = try KubeProtobuf.envelope(of: try await list.bytes())
            #expect(list.status == 200 && listed.kind == kind + "List", "\(kind)")
            let listText = try Protoc.decode(listed.raw, as: sample.type + "List")
            #expect(listText.contains(#"name: "\#(sample.name)""#) && listText.contains(#"value: "patched""#), "\(kind): \(listText)")
        }
        // Deleted with a protobuf answer (the object, or a Status), the namespace last.
        for sample in Self.samples.reversed() {
            let deleted = try await httpRequest(.DELETE, port: port, path: sample.collection + "/" + sample.name, headers: [("Accept", Self.protobuf)])
            let bytes = try await deleted.bytes()
            #expect(deleted.status == 200 || deleted.status == 202, "\(sample.resource.kind): \(String(decoding: bytes, as: UTF8.self))")
            let kind = try KubeProtobuf.envelope(of: bytes).kind
            #expect(kind == sample.resource.kind || kind == "Status", "\(sample.resource.kind): \(kind)")
        }
        await server.server.stop()
    }
}
