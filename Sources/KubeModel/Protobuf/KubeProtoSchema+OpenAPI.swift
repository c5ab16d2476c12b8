/// OpenAPI schemas of the built-in kinds, made from the same published protobuf schemas the
/// protobuf encoding uses: every field with its JSON name and type, so that `kubectl explain`
/// and schema-driven clients see every kind the server has. The schemas carry no descriptions
/// (the published comments are Kubernetes' prose) and no `required` lists (the protobuf schemas
/// cannot tell a field without `omitempty` from a required one, and a wrong `required` would
/// make a client refuse valid objects).
extension KubeProtoSchema {
    /// Which OpenAPI document a schema goes in: v2 refers to `#/definitions/`, v3 to
    /// `#/components/schemas/`, and the two spell a quantity differently.
    public enum OpenAPIVersion: Sendable {
        case v2, v3
    }

    /// A kind the server serves: its group (`""` for the core group), version and kind.
    public struct ServedKind: Sendable, Hashable {
        public var group: String
        public var version: String
        public var kind: String

        /// A served kind.
        public init(group: String, version: String, kind: String) {
            self.group = group
            self.version = version
            self.kind = kind
        }
    }

    /// Kubernetes' OpenAPI name of a message: `io.k8s.api.core.v1.Pod` for `k8s.io.api.core.v1.Pod`.
    public static func definitionName(ofMessage name: String) -> String {
        name.hasPrefix("k8s.io.") ? "io.k8s." + name.dropFirst("k8s.io.".count) : name
    }

    /// The schemas of `kinds`, their lists, and every schema they refer to, by definition name
    /// (sorted). Each kind's and list's schema has `apiVersion` and `kind` and is tagged with
    /// `x-kubernetes-group-version-kind`. Kinds without a protobuf message are left out.
    public func openAPIDefinitions(for kinds: [ServedKind], version: OpenAPIVersion) -> [(name: String, schema: JSONValue)] {
        var tags: [Int: [ServedKind]] = [:]
        for kind in kinds {
            for tagged in [kind, ServedKind(group: kind.group, version: kind.version, kind: kind.kind + "List")] {
                if let name = messageName(group: tagged.group, version: tagged.version, kind: tagged.kind), let index = messageIndex[name] {
                    tags[index, default: []].append(tagged)
                }
            }
        }
        return definitions(roots: Array(tags.keys), tags: tags, version: version)
    }

    /// The schemas of the messages named `messages` (full protobuf names, such as
    /// `k8s.io.apimachinery.pkg.apis.meta.v1.ObjectMeta`) and every schema they refer to.
    public func openAPIDefinitions(ofMessages messages: [String], version: OpenAPIVersion) -> [(name: String, schema: JSONValue)] {
        definitions(roots: messages.compactMap { messageIndex[$0] }, tags: [:], version: version)
    }

    private func definitions(roots: [Int], tags: [Int: [ServedKind]], version: OpenAPIVersion) -> [(name: String, schema: JSONValue)] {
        var pending = roots
        var seen = Set(pending)
        var definitions: [(name: String, schema: JSONValue)] = []
        while let index = pending.popLast() {
            let message = messageList[index]
            var referenced: [Int] = []
            var schema = openAPISchema(of: message, version: version, referenced: &referenced)
            if let served = tags[index], case .object(var members) = schema {
                var properties = members["properties"]?.objectValue ?? JSONObject()
                properties["apiVersion"] = .object(JSONObject([("type", .string("string"))]))
                properties["kind"] = .object(JSONObject([("type", .string("string"))]))
                members["properties"] = .object(properties)
                members["x-kubernetes-group-version-kind"] = .array(served.map { kind in
                    .object(JSONObject([("group", .string(kind.group)), ("kind", .string(kind.kind)), ("version", .string(kind.version))]))
                })
                schema = .object(members)
            }
            definitions.append((Self.definitionName(ofMessage: message.name), schema))
            for next in referenced where seen.insert(next).inserted { pending.append(next) }
        }
        return definitions.sorted { $0.name < $1.name }
    }

    /// One message's schema; the messages it refers to are appended to `referenced`.
    private func openAPISchema(of message: Message, version: OpenAPIVersion, referenced: inout [Int]) -> JSONValue {
        switch message.special {
        case .time, .microTime: return Self.schema([("type", "string"), ("format", "date-time")])
        case .duration: return Self.schema([("type", "string")])
        case .quantity:
            switch version {
            case .v2: return Self.schema([("type", "string")])
            case .v3: return .object(JSONObject([("oneOf", .array([Self.schema([("type", "string")]), Self.schema([("type", "number")])]))]))
            }
        case .intOrString:
            switch version {
            case .v2: return Self.schema([("type", "string"), ("format", "int-or-string")])
            case .v3:
                return .object(JSONObject([("format", .string("int-or-string")),
                                           ("oneOf", .array([Self.schema([("type", "integer")]), Self.schema([("type", "string")])]))]))
            }
        case .embeddedJSON:
            // RawExtension and FieldsV1 are objects; apiextensions' JSON is any value.
            return message.name == KubeProtobuf.apiExtensionsJSON ? .object(JSONObject()) : Self.schema([("type", "object")])
        case .schemaOrArray, .schemaOrBool, .schemaOrStringArray:
            return .object(JSONObject())
        case .list:
            guard let items = message.fields.first(where: { $0.repeated }) else { return Self.schema([("type", "array")]) }
            return .object(JSONObject([("type", .string("array")), ("items", fieldSchema(items.type, version: version, referenced: &referenced))]))
        case .none:
            var properties = JSONObject()
            addProperties(of: message, to: &properties, version: version, referenced: &referenced)
            return .object(JSONObject([("type", .string("object")), ("properties", .object(properties))]))
        }
    }

    /// The message's fields as properties; an inline field's members are the message's own.
    private func addProperties(of message: Message, to properties: inout JSONObject, version: OpenAPIVersion, referenced: inout [Int]) {
        for field in message.fields {
            if field.inline, case .message(let index) = field.type {
                addProperties(of: messageList[index], to: &properties, version: version, referenced: &referenced)
                continue
            }
            let item = fieldSchema(field.type, version: version, referenced: &referenced)
            if field.repeated && field.type != .bytes {
                properties[field.name] = .object(JSONObject([("type", .string("array")), ("items", item)]))
            } else if version == .v3, case .message = field.type {
                // As kube-apiserver writes a property of a named type in v3 (a `$ref` takes no
                // siblings there), which kubectl explain shows by the type's name.
                properties[field.name] = .object(JSONObject([("allOf", .array([item]))]))
            } else {
                properties[field.name] = item
            }
        }
    }

    private func fieldSchema(_ type: FieldType, version: OpenAPIVersion, referenced: inout [Int]) -> JSONValue {
        switch type {
        case .string: return Self.schema([("type", "string")])
        case .bool: return Self.schema([("type", "boolean")])
        case .int32, .uint32: return Self.schema([("type", "integer"), ("format", "int32")])
        case .int64, .uint64: return Self.schema([("type", "integer"), ("format", "int64")])
        case .bytes: return Self.schema([("type", "string"), ("format", "byte")])
        case .double: return Self.schema([("type", "number"), ("format", "double")])
        case .float: return Self.schema([("type", "number"), ("format", "float")])
        case .map(_, let value):
            return .object(JSONObject([("type", .string("object")), ("additionalProperties", fieldSchema(value, version: version, referenced: &referenced))]))
        case .message(let index):
            referenced.append(index)
            let prefix = version == .v2 ? "#/definitions/" : "#/components/schemas/"
            return .object(JSONObject([("$ref", .string(prefix + Self.definitionName(ofMessage: messageList[index].name)))]))
        }
    }

    private static func schema(_ members: [(String, String)]) -> JSONValue {
        .object(JSONObject(members.map { ($0.0, .string($0.1)) }))
    }
}
