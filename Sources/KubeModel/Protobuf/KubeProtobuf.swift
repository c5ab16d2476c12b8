/// Kubernetes' protobuf encoding (`application/vnd.kubernetes.protobuf`) of the built-in kinds,
/// transcoded to and from their JSON form with the published schemas (``KubeProtoSchema``):
/// an object is the magic `k8s\0` and a `runtime.Unknown` whose `typeMeta` names the kind and
/// whose `raw` is the kind's message. Custom resources have no protobuf form.
///
/// JSON produced from protobuf follows Go's encoding of the same object: times as RFC 3339,
/// quantities and durations as strings, bytes as base64, `IntOrString` as a number or string,
/// and fields marked `+optional` left out when empty (Go writes every scalar into protobuf, and
/// `omitempty` drops the empty ones from JSON). A field the schema does not know is skipped.
public struct KubeProtobuf: Sendable {
    /// The 4 bytes that start every enveloped object.
    public static let magic: [UInt8] = [0x6b, 0x38, 0x73, 0x00]
    /// The content type.
    public static let contentType = "application/vnd.kubernetes.protobuf"

    /// Transcoding with the built-in kinds' schemas.
    public static let builtIn = KubeProtobuf(schema: .builtIn)

    public let schema: KubeProtoSchema

    public init(schema: KubeProtoSchema) {
        self.schema = schema
    }

    static let meta = "k8s.io.apimachinery.pkg.apis.meta.v1."
    static let time = meta + "Time"
    static let microTime = meta + "MicroTime"
    static let duration = meta + "Duration"
    static let fieldsV1 = meta + "FieldsV1"
    static let quantity = "k8s.io.apimachinery.pkg.api.resource.Quantity"
    static let intOrString = "k8s.io.apimachinery.pkg.util.intstr.IntOrString"
    static let rawExtension = "k8s.io.apimachinery.pkg.runtime.RawExtension"
    static let unknown = "k8s.io.apimachinery.pkg.runtime.Unknown"
    static let apiExtensions = "k8s.io.apiextensions_apiserver.pkg.apis.apiextensions.v1."
    static let apiExtensionsJSON = apiExtensions + "JSON"

    // MARK: the envelope

    /// The kind, API version and message bytes of an enveloped object.
    public struct Envelope: Sendable, Equatable {
        public var apiVersion: String
        public var kind: String
        public var raw: [UInt8]

        public init(apiVersion: String, kind: String, raw: [UInt8]) {
            self.apiVersion = apiVersion
            self.kind = kind
            self.raw = raw
        }
    }

    /// Opens `k8s\0` + `runtime.Unknown` (kube-apiserver's messages for what is not one).
    public static func envelope(of bytes: [UInt8]) throws(ProtobufDecodingError) -> Envelope {
        guard !bytes.isEmpty else { throw ProtobufDecodingError("empty data") }
        guard bytes.count >= magic.count, Array(bytes.prefix(magic.count)) == magic else {
            throw ProtobufDecodingError("provided data does not appear to be a protobuf message, expected prefix [107 56 115 0]")
        }
        guard bytes.count > magic.count else { throw ProtobufDecodingError("empty body") }
        var reader = ProtobufReader(bytes[magic.count...])
        var envelope = Envelope(apiVersion: "", kind: "", raw: [])
        while let (number, value) = try reader.next() {
            switch number {
            case 1:
                var typeMeta = value.message
                while let (field, text) = try typeMeta.next() {
                    if field == 1 { envelope.apiVersion = text.string } else if field == 2 { envelope.kind = text.string }
                }
            case 2:
                envelope.raw = value.data
            default:
                continue
            }
        }
        return envelope
    }

    /// `k8s\0` + `runtime.Unknown` around `envelope`.
    public static func bytes(of envelope: Envelope) -> [UInt8] {
        var typeMeta = ProtobufWriter()
        typeMeta.lengthDelimitedField(1, envelope.apiVersion.utf8)
        typeMeta.lengthDelimitedField(2, envelope.kind.utf8)
        var unknown = ProtobufWriter(prefix: magic)
        unknown.lengthDelimitedField(1, typeMeta.bytes)
        unknown.lengthDelimitedField(2, envelope.raw)
        return unknown.bytes
    }

    // MARK: objects

    /// The message name of an object of `apiVersion` and `kind`; `nil` when it has no protobuf
    /// form.
    public func messageName(apiVersion: String, kind: String) -> String? {
        let parts = apiVersion.split(separator: "/", maxSplits: 1)
        let (group, version) = parts.count == 2 ? (String(parts[0]), String(parts[1])) : ("", apiVersion)
        return schema.messageName(group: group, version: version, kind: kind)
    }

    /// An enveloped object as JSON, `apiVersion` and `kind` first.
    public func decodeObject(_ bytes: [UInt8]) throws(ProtobufDecodingError) -> JSONValue {
        let envelope = try Self.envelope(of: bytes)
        guard let name = messageName(apiVersion: envelope.apiVersion, kind: envelope.kind) else {
            throw ProtobufDecodingError("no protobuf message is known for \(envelope.kind) in \(envelope.apiVersion)")
        }
        var object = JSONObject([("apiVersion", .string(envelope.apiVersion)), ("kind", .string(envelope.kind))])
        if case .object(let fields) = try json(fromMessage: envelope.raw, type: name) {
            for (key, value) in fields { object[key] = value }
        }
        return .object(object)
    }

    /// An object (with `apiVersion` and `kind`) enveloped as protobuf.
    public func encodeObject(_ object: JSONValue) throws(ProtobufEncodingError) -> [UInt8] {
        guard let apiVersion = object["apiVersion"]?.stringValue, let kind = object["kind"]?.stringValue else {
            throw ProtobufEncodingError("the object has no apiVersion and kind")
        }
        guard let name = messageName(apiVersion: apiVersion, kind: kind) else {
            throw ProtobufEncodingError("\(kind) in \(apiVersion) has no protobuf form")
        }
        return Self.bytes(of: Envelope(apiVersion: apiVersion, kind: kind, raw: try message(fromJSON: object, type: name)))
    }
}

extension KubeProtobuf {
    /// The message of an object of `apiVersion` and `kind`, without the envelope: what a
    /// list's items are. `nil` when the kind has no protobuf form.
    public func itemMessage(_ object: JSONValue, apiVersion: String, kind: String) throws(ProtobufEncodingError) -> [UInt8]? {
        guard let name = messageName(apiVersion: apiVersion, kind: kind) else { return nil }
        return try message(fromJSON: object, type: name)
    }

    /// An enveloped `{kind}List` at `resourceVersion` whose items are given as their messages
    /// (``itemMessage(_:apiVersion:kind:)``), written straight into the list: no item is
    /// decoded or copied twice. `nil` when the kind has no protobuf list.
    public func encodeList(apiVersion: String, kind: String, resourceVersion: String, items: [[UInt8]]) -> [UInt8]? {
        let listKind = kind + "List"
        guard let name = messageName(apiVersion: apiVersion, kind: listKind), let list = schema.message(named: name),
              let metadata = list.fieldIndexByName["metadata"].map({ list.fields[$0] }),
              let itemsField = list.fieldIndexByName["items"].map({ list.fields[$0] }),
              case .message(let listMetaIndex) = metadata.type,
              let version = schema.messageList[listMetaIndex].fieldIndexByName["resourceVersion"].map({ schema.messageList[listMetaIndex].fields[$0] })
        else { return nil }
        var writer = ProtobufWriter(prefix: Self.magic)
        writer.lengthDelimitedField(1) { typeMeta in
            typeMeta.lengthDelimitedField(1, apiVersion.utf8)
            typeMeta.lengthDelimitedField(2, listKind.utf8)
        }
        writer.lengthDelimitedField(2) { raw in
            raw.lengthDelimitedField(metadata.number) { listMeta in listMeta.lengthDelimitedField(version.number, resourceVersion.utf8) }
            for item in items { raw.lengthDelimitedField(itemsField.number, item) }
        }
        return writer.bytes
    }
}

/// Why protobuf bytes do not decode.
public struct ProtobufDecodingError: Error, Sendable, Equatable, CustomStringConvertible {
    public let message: String
    package init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Why a JSON value has no protobuf form: the path of the member at fault
/// (`spec.containers[0].ports`) and what is wrong with it.
public struct ProtobufEncodingError: Error, Sendable, Equatable, CustomStringConvertible {
    private var path = ""
    private var reason: String

    /// The whole message: `path: reason`, or the reason alone.
    public var message: String { path.isEmpty ? reason : path + ": " + reason }

    init(_ message: String) { reason = message }
    /// An error about the value being written, before any field names it.
    public init(reason: String) { self.reason = reason }

    /// The error as seen from the field, map key (`[key]`) or list index (`[0]`) `component`
    /// that holds the value at fault.
    func within(_ component: String) -> ProtobufEncodingError {
        var outer = self
        outer.path = path.isEmpty ? component : path.hasPrefix("[") ? component + path : component + "." + path
        return outer
    }

    public static func == (lhs: ProtobufEncodingError, rhs: ProtobufEncodingError) -> Bool { lhs.message == rhs.message }

    public var description: String { message }
}
