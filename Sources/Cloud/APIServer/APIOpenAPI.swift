import KubeModel

/// The part of OpenAPI v3 kubectl reads before `apply` and `create` with `--validate`: the index
/// at `/openapi/v3`, and per group version the PATCH operations of each kind, which say that
/// the server takes `fieldValidation` (so kubectl lets the server validate instead of checking
/// client side against full schemas, which this server does not publish).
///
/// A custom resource's document also carries its version's schema under `components.schemas`,
/// tagged with its group, version and kind, which is what `kubectl explain` reads.
struct APIOpenAPI: Sendable {
    let resources: [APIResource]
    /// The `openAPIV3Schema` of each custom resource, by `{storageName}/{version}`.
    var customSchemas: [String: JSONValue] = [:]

    /// `/openapi/v3`: where each group version's document is.
    var index: JSONValue {
        var paths = JSONObject()
        for path in Set(resources.map(Self.groupVersionPath)).sorted() {
            paths[path] = .object(JSONObject([("serverRelativeURL", .string("/openapi/v3/\(path)"))]))
        }
        return .object(JSONObject([("paths", .object(paths))]))
    }

    /// The document of `path` (`api/v1`, `apis/{group}/{version}`), or `nil`.
    func document(_ path: String) -> JSONValue? {
        let served = resources.filter { Self.groupVersionPath($0) == path }
        guard !served.isEmpty else { return nil }
        var paths = JSONObject()
        var schemas = JSONObject()
        for resource in served {
            if let schema = customSchemas[resource.storageName + "/" + resource.version] {
                schemas[Self.schemaName(resource)] = Self.described(schema, resource: resource)
            }
            let base = resource.group.isEmpty ? "/api/\(resource.version)" : "/apis/\(resource.group)/\(resource.version)"
            let item = resource.namespaced ? "\(base)/namespaces/{namespace}/\(resource.plural)/{name}" : "\(base)/\(resource.plural)/{name}"
            let kind = JSONValue.object(JSONObject([
                ("group", .string(resource.group)), ("version", .string(resource.version)), ("kind", .string(resource.kind)),
            ]))
            let parameters = JSONValue.array(["fieldValidation", "fieldManager", "dryRun"].map { name in
                .object(JSONObject([("name", .string(name)), ("in", .string("query")), ("schema", .object(JSONObject([("type", .string("string"))])))]))
            })
            let operation = { (id: String) in
                JSONValue.object(JSONObject([
                    ("operationId", .string("\(id)\(resource.kind)")), ("x-kubernetes-group-version-kind", kind), ("parameters", parameters),
                    ("responses", .object(JSONObject())),
                ]))
            }
            paths[item] = .object(JSONObject([("patch", operation("patch")), ("put", operation("replace"))]))
        }
        return .object(JSONObject([
            ("openapi", .string("3.0.0")),
            ("info", .object(JSONObject([("title", .string("Kubernetes")), ("version", .string("v1.\(APIDiscovery.kubernetesMinor).0"))]))),
            ("paths", .object(paths)), ("components", .object(JSONObject([("schemas", .object(schemas))]))),
        ]))
    }

    /// `com.example.v1.Widget` for group `example.com`: Kubernetes' reverse-domain schema names.
    private static func schemaName(_ resource: APIResource) -> String {
        (resource.group.split(separator: ".").reversed().map(String.init) + [resource.version, resource.kind]).joined(separator: ".")
    }

    /// A custom resource's schema with the members every object has and its kind's tag.
    private static func described(_ schema: JSONValue, resource: APIResource) -> JSONValue {
        var schema = schema
        var properties = schema["properties"]?.objectValue ?? JSONObject()
        let standard: [(String, String, String)] = [
            ("apiVersion", "string", "APIVersion defines the versioned schema of this representation of an object."),
            ("kind", "string", "Kind is a string value representing the REST resource this object represents."),
            ("metadata", "object", "Standard object's metadata."),
        ]
        for (name, type, description) in standard where properties[name] == nil {
            properties[name] = .object(JSONObject([("type", .string(type)), ("description", .string(description))]))
        }
        schema["properties"] = .object(properties)
        schema["x-kubernetes-group-version-kind"] = .array([.object(JSONObject([
            ("group", .string(resource.group)), ("kind", .string(resource.kind)), ("version", .string(resource.version)),
        ]))])
        return schema
    }

    private static func groupVersionPath(_ resource: APIResource) -> String {
        resource.group.isEmpty ? "api/\(resource.version)" : "apis/\(resource.group)/\(resource.version)"
    }
}
