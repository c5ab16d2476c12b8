import KubeModel

/// The checks kube-apiserver makes of a CustomResourceDefinition before storing it, worded as
/// it words them: its name is `plural.group`, exactly one version is the storage version,
/// every version has a schema, and every schema is structural (each node declares its type,
/// unless it preserves unknown fields or is an int-or-string).
enum DefinitionCheck {
    static func errors(in definition: JSONValue) -> [StructuralSchema.FieldError] {
        var errors: [StructuralSchema.FieldError] = []
        let name = definition[path: ["metadata", "name"]]?.stringValue ?? ""
        let plural = definition[path: ["spec", "names", "plural"]]?.stringValue ?? ""
        let group = definition[path: ["spec", "group"]]?.stringValue ?? ""
        if name != "\(plural).\(group)" {
            errors.append(.init(kind: .invalid, field: "metadata.name", value: .string(name), detail: #"must be spec.names.plural+"."+spec.group"#))
        }
        let versions = definition[path: ["spec", "versions"]]?.arrayValue ?? []
        if versions.isEmpty { errors.append(.init(kind: .required, field: "spec.versions", value: nil, detail: "")) }
        let storage = versions.filter { $0["storage"]?.boolValue == true }.count
        if !versions.isEmpty, storage != 1 {
            errors.append(.init(kind: .invalid, field: "spec.versions", value: .array(versions), detail: "must have exactly one version marked as storage version"))
        }
        for (index, version) in versions.enumerated() {
            let path = "spec.versions[\(index)].schema.openAPIV3Schema"
            guard let schema = version[path: ["schema", "openAPIV3Schema"]] else {
                errors.append(.init(kind: .required, field: path, value: nil, detail: "schemas are required"))
                continue
            }
            structural(schema, path: path, into: &errors)
        }
        return errors
    }

    private static func structural(_ schema: JSONValue, path: String, into errors: inout [StructuralSchema.FieldError]) {
        let exempt = schema["x-kubernetes-preserve-unknown-fields"] == .bool(true) || schema["x-kubernetes-int-or-string"] == .bool(true)
        if schema["type"] == nil, !exempt {
            errors.append(.init(kind: .required, field: path + ".type", value: nil, detail: "must not be empty for specified object fields"))
        }
        for (name, property) in schema["properties"]?.objectValue ?? JSONObject() {
            structural(property, path: "\(path).properties[\(name)]", into: &errors)
        }
        if let items = schema["items"], case .object = items { structural(items, path: path + ".items", into: &errors) }
        if let additional = schema["additionalProperties"], case .object = additional {
            if schema["properties"] != nil {
                errors.append(.init(kind: .forbidden, field: path + ".additionalProperties", value: nil, detail: "additionalProperties and properties are mutual exclusive"))
            }
            structural(additional, path: path + ".additionalProperties", into: &errors)
        }
    }
}
