import Foundation
@testable import KubeModel
import Testing

/// Kubernetes protobuf against an encoder that is not ours: Debian's `protoc` with the
/// published schemas in `../shared/testdata/kubernetes-proto`.
@Suite struct KubeProtobufTests {
    static let shared = Protoc.testdata

    private func encodeWithProtoc(_ text: String, as type: String) throws -> [UInt8] { try Protoc.encode(text, as: type) }
    private func decodeWithProtoc(_ bytes: [UInt8], as type: String) throws -> String { try Protoc.decode(bytes, as: type) }

    @Test func goTextFormsOfTimesDurationsAndBytes() {
        #expect(GoFormats.rfc3339(seconds: 0, nanos: 0) == "1970-01-01T00:00:00Z")
        #expect(GoFormats.rfc3339(seconds: 1_700_000_000, nanos: 123_456_789, fractionDigits: 6) == "2023-11-14T22:13:20.123456Z")
        #expect(GoFormats.rfc3339(seconds: -1, nanos: 0) == "1969-12-31T23:59:59Z")
        #expect(GoFormats.rfc3339(seconds: 951_782_400, nanos: 0) == "2000-02-29T00:00:00Z")
        #expect(GoFormats.parseRFC3339("2023-11-14T22:13:20.123456Z")! == (1_700_000_000, 123_456_000))
        #expect(GoFormats.parseRFC3339("2023-11-15T00:13:20+02:00")! == (1_700_000_000, 0))
        #expect(GoFormats.parseRFC3339("2023-11-14 22:13:20Z") == nil && GoFormats.parseRFC3339("yesterday") == nil)
        for (nanoseconds, text) in [(0, "0s"), (1500, "1.5µs"), (150_000_000, "150ms"), (3_723_500_000_000, "1h2m3.5s"), (-60_000_000_000, "-1m0s"),
                                    (7_200_000_000_000, "2h0m0s"), (999, "999ns")] as [(Int64, String)] {
            #expect(GoFormats.duration(nanoseconds: nanoseconds) == text)
            #expect(GoFormats.parseDuration(text) == nanoseconds, "\(text)")
        }
        #expect(GoFormats.parseDuration("5x") == nil && GoFormats.parseDuration("") == nil)
        for bytes in [[], [0], [0, 1], [0, 1, 2], Array(0...255)] as [[UInt8]] {
            #expect(GoFormats.decodeBase64(GoFormats.base64(bytes)) == bytes)
        }
        #expect(GoFormats.base64(Array("hello".utf8)) == "aGVsbG8=" && GoFormats.decodeBase64("aGVsbG8") == Array("hello".utf8))
        #expect(GoFormats.decodeBase64("a b") == nil)
    }

    @Test func anObjectProtocEncodedDecodesToItsJSON() throws {
        let text = """
            metadata { name: "app" namespace: "default" uid: "" resourceVersion: "7" creationTimestamp { seconds: 1700000000 }
                       labels { key: "tier" value: "front" } }
            data { key: "mode" value: "edge" }
            binaryData { key: "blob" value: "\\000\\001\\377" }
            immutable: false
            """
        let raw = try encodeWithProtoc(text, as: "k8s.io.api.core.v1.ConfigMap")
        let body = KubeProtobuf.bytes(of: .init(apiVersion: "v1", kind: "ConfigMap", raw: raw))
        let object = try KubeProtobuf.builtIn.decodeObject(body)
        let expected = try JSONValue(parsing: """
            {"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"app","namespace":"default","resourceVersion":"7",
             "creationTimestamp":"2023-11-14T22:13:20Z","labels":{"tier":"front"}},"immutable":false,"data":{"mode":"edge"},"binaryData":{"blob":"AAH/"}}
            """)
        #expect(object == expected, "\(object.serialized)")
    }

    @Test func podFieldsOfEveryKindDecodeAsGoWritesThemInJSON() throws {
        let text = """
            metadata { name: "web" }
            spec {
              containers { name: "c" image: "nginx" ports { containerPort: 80 protocol: "TCP" }
                           resources { limits { key: "cpu" value { string: "100m" } } }
                           livenessProbe { handler { httpGet { path: "/" port { type: 1 strVal: "http" } } } periodSeconds: 10 }
                           readinessProbe { handler { tcpSocket { port { type: 0 intVal: 8080 } } } } }
              volumes { name: "scratch" volumeSource { emptyDir { } } }
              automountServiceAccountToken: false
              hostNetwork: false
            }
            status { phase: "Running" startTime { } conditions { type: "Ready" status: "True" lastTransitionTime { seconds: 86400 } } }
            """
        let raw = try encodeWithProtoc(text, as: "k8s.io.api.core.v1.Pod")
        let pod = try KubeProtobuf.builtIn.json(fromMessage: raw, type: "k8s.io.api.core.v1.Pod")
        let container = pod[path: ["spec", "containers"]]?.arrayValue?.first
        #expect(container?[path: ["resources", "limits", "cpu"]] == .string("100m"))
        #expect(container?[path: ["livenessProbe", "httpGet", "port"]] == .string("http"))
        #expect(container?[path: ["readinessProbe", "tcpSocket", "port"]] == .number("8080"))
        #expect(container?[path: ["ports"]] == .array([try JSONValue(parsing: #"{"containerPort":80,"protocol":"TCP"}"#)]))
        #expect(pod[path: ["spec", "volumes"]] == .array([try JSONValue(parsing: #"{"name":"scratch","emptyDir":{}}"#)]), "an empty emptyDir stays")
        #expect(pod[path: ["spec", "automountServiceAccountToken"]] == .bool(false), "a false that was set stays")
        #expect(pod[path: ["status", "startTime"]] == .null, "a zero time is null, as in Go's JSON")
        #expect(pod[path: ["status", "conditions"]]?.arrayValue?.first?["lastTransitionTime"] == .string("1970-01-02T00:00:00Z"))
    }

    @Test func ourEncodingDecodesWithProtocAndBack() throws {
        for name in ["core.v1.ConfigMap", "core.v1.Node"] {
            let original = try JSONValue(parsing: try String(contentsOfFile: Self.shared + "/kubernetes/\(name).json", encoding: .utf8))
            let kind = String(name.split(separator: ".").last!)
            let type = "k8s.io.api.\(name)"
            let ours = try KubeProtobuf.builtIn.message(fromJSON: original, type: type)
            // protoc reads our bytes, writes them as text, encodes that text again: the same message.
            let text = try decodeWithProtoc(ours, as: type)
            #expect(!text.isEmpty)
            let theirs = try encodeWithProtoc(text, as: type)
            #expect(try KubeProtobuf.builtIn.json(fromMessage: theirs, type: type) == KubeProtobuf.builtIn.json(fromMessage: ours, type: type), "\(kind)")
        }
    }

    @Test func kubernetesRoundTripDataSurvivesJSONToProtobufToJSON() throws {
        for name in ["core.v1.ConfigMap", "core.v1.Node"] {
            let original = try JSONValue(parsing: try String(contentsOfFile: Self.shared + "/kubernetes/\(name).json", encoding: .utf8))
            let body = try KubeProtobuf.builtIn.encodeObject(original)
            #expect(Array(body.prefix(4)) == KubeProtobuf.magic)
            let back = try KubeProtobuf.builtIn.decodeObject(body)
            // Only what Kubernetes 1.32's schema no longer has is lost (as kube-apiserver 1.32 loses it).
            #expect(Self.differences(original, back) == ["metadata.clusterName: only in the original"], "\(name)")
        }
    }

    @Test func aCustomResourceDefinitionsSchemaSurvivesProtobufWithItsEitherOrFields() throws {
        let crd = try JSONValue(parsing: """
            {"apiVersion":"apiextensions.k8s.io/v1","kind":"CustomResourceDefinition","metadata":{"name":"widgets.example.com"},
             "spec":{"group":"example.com","names":{"plural":"widgets","singular":"widget","kind":"Widget","listKind":"WidgetList"},"scope":"Namespaced",
              "versions":[{"name":"v1","served":true,"storage":true,"schema":{"openAPIV3Schema":{"type":"object","properties":{
                "spec":{"type":"object","required":["size"],"properties":{
                  "size":{"type":"integer","minimum":1,"maximum":10,"default":3},
                  "tags":{"type":"array","items":{"type":"string","maxLength":20}},
                  "pair":{"type":"array","items":[{"type":"string"},{"type":"integer"}]},
                  "labels":{"type":"object","additionalProperties":{"type":"string"}},
                  "open":{"type":"object","additionalProperties":false,"x-kubernetes-preserve-unknown-fields":true},
                  "a":{"type":"string","dependencies":{"b":["c","d"],"e":{"required":["f"]}}}}}}}},
               "additionalPrinterColumns":[{"name":"Size","type":"integer","jsonPath":".spec.size"}]}]}}
            """)
        let body = try KubeProtobuf.builtIn.encodeObject(crd)
        let back = try KubeProtobuf.builtIn.decodeObject(body)
        #expect(Self.differences(crd, back).isEmpty, "\(Self.differences(crd, back))")
        let spec = back[path: ["spec", "versions"]]?.arrayValue?.first?[path: ["schema", "openAPIV3Schema", "properties", "spec"]]
        #expect(spec?[path: ["properties", "tags", "items"]] == .object(JSONObject([("type", .string("string")), ("maxLength", .number("20"))])))
        #expect(spec?[path: ["properties", "pair", "items"]]?.arrayValue?.count == 2)
        #expect(spec?[path: ["properties", "labels", "additionalProperties", "type"]] == .string("string"))
        #expect(spec?[path: ["properties", "open", "additionalProperties"]] == .bool(false))
        #expect(spec?[path: ["properties", "open", "x-kubernetes-preserve-unknown-fields"]] == .bool(true))
        #expect(spec?[path: ["properties", "a", "dependencies", "b"]] == .array([.string("c"), .string("d")]))
        #expect(spec?[path: ["properties", "a", "dependencies", "e", "required"]] == .array([.string("f")]))
        #expect(spec?[path: ["properties", "size", "default"]] == .number("3"))
        #expect(spec?[path: ["properties", "size", "description"]] == nil, "no empty strings appear")
        // protoc reads what we wrote as a CustomResourceDefinition.
        let text = try decodeWithProtoc(try KubeProtobuf.envelope(of: body).raw, as: "k8s.io.apiextensions_apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinition")
        #expect(text.contains(#"jsonPath: ".spec.size""#) && text.contains("allows: false"), "\(text)")
    }

    @Test func badBodiesAreRefusedWithKubeAPIServersMessages() throws {
        #expect(throws: ProtobufDecodingError("empty data")) { try KubeProtobuf.builtIn.decodeObject([]) }
        #expect(throws: ProtobufDecodingError("provided data does not appear to be a protobuf message, expected prefix [107 56 115 0]")) {
            try KubeProtobuf.builtIn.decodeObject(Array("{}".utf8))
        }
        #expect(throws: ProtobufDecodingError("empty body")) { try KubeProtobuf.builtIn.decodeObject(KubeProtobuf.magic) }
        let truncated = KubeProtobuf.bytes(of: .init(apiVersion: "v1", kind: "ConfigMap", raw: [0x0a, 0x05, 0x0a]))
        #expect(throws: ProtobufDecodingError.self) { try KubeProtobuf.builtIn.decodeObject(truncated) }
        let unknownKind = KubeProtobuf.bytes(of: .init(apiVersion: "example.com/v1", kind: "Widget", raw: []))
        #expect(throws: ProtobufDecodingError("no protobuf message is known for Widget in example.com/v1")) { try KubeProtobuf.builtIn.decodeObject(unknownKind) }
        #expect(throws: ProtobufEncodingError("metadata.generation: expected an integer")) {
            try KubeProtobuf.builtIn.encodeObject(try JSONValue(parsing: #"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"generation":"x"}}"#))
        }
    }

    @Test func everyKindIsFoundInItsGroupsPackage() {
        let protobuf = KubeProtobuf.builtIn
        #expect(protobuf.messageName(apiVersion: "v1", kind: "Pod") == "k8s.io.api.core.v1.Pod")
        #expect(protobuf.messageName(apiVersion: "apps/v1", kind: "Deployment") == "k8s.io.api.apps.v1.Deployment")
        #expect(protobuf.messageName(apiVersion: "rbac.authorization.k8s.io/v1", kind: "Role") == "k8s.io.api.rbac.v1.Role")
        #expect(protobuf.messageName(apiVersion: "coordination.k8s.io/v1", kind: "Lease") == "k8s.io.api.coordination.v1.Lease")
        #expect(protobuf.messageName(apiVersion: "v1", kind: "Status") == "k8s.io.apimachinery.pkg.apis.meta.v1.Status")
        #expect(protobuf.messageName(apiVersion: "apiextensions.k8s.io/v1", kind: "CustomResourceDefinition")
                == "k8s.io.apiextensions_apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinition")
        #expect(protobuf.messageName(apiVersion: "devices.kubeedge.io/v1beta1", kind: "Device") == nil)
    }

    /// Paths where two JSON values differ.
    static func differences(_ a: JSONValue, _ b: JSONValue, path: String = "") -> [String] {
        switch (a, b) {
        case (.object(let left), .object(let right)):
            var found: [String] = []
            for (key, value) in left {
                let child = path.isEmpty ? key : path + "." + key
                if let other = right[key] { found += differences(value, other, path: child) } else { found.append("\(child): only in the original") }
            }
            for (key, _) in right where left[key] == nil { found.append("\(path.isEmpty ? key : path + "." + key): only in the copy") }
            return found
        case (.array(let left), .array(let right)) where left.count == right.count:
            return zip(left, right).enumerated().flatMap { differences($1.0, $1.1, path: "\(path)[\($0)]") }
        default:
            return a == b ? [] : ["\(path): \(a.serialized) ≠ \(b.serialized)"]
        }
    }
}
