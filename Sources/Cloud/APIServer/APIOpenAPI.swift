import KubeModel

/// The OpenAPI documents kubectl and schema-driven clients read: v3 (an index at
/// `/openapi/v3`, then one document per group version) and v2 (one document at `/openapi/v2`).
///
/// Each describes every kind served: the built-in kinds by the schemas made from their
/// published protobuf messages (``KubeProtoSchema/openAPIDefinitions(for:version:)``), a
/// custom resource by its version's `openAPIV3Schema`, each tagged with its group, version and
/// kind, which is what `kubectl explain` looks for. The paths hold each kind's PATCH and PUT
/// operations, which say that the server takes `fieldValidation` (so kubectl lets the server
/// validate rather than checking client side).
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

    /// The v3 document of `path` (`api/v1`, `apis/{group}/{version}`), or `nil`.
    func document(_ path: String) -> JSONValue? {
        let served = resources.filter { Self.groupVersionPath($0) == path }
        guard !served.isEmpty else { return nil }
        return .object(JSONObject([
            ("openapi", .string("3.0.0")), ("info", Self.info),
            ("paths", .object(paths(of: served, version: .v3))),
            ("components", .object(JSONObject([("schemas", .object(definitions(of: served, version: .v3)))]))),
        ]))
    }

    /// The v2 document (`/openapi/v2`): every kind served.
    var documentV2: JSONValue {
        .object(JSONObject([
            ("swagger", .string("2.0")), ("info", Self.info),
            ("paths", .object(paths(of: resources, version: .v2))),
            ("definitions", .object(definitions(of: resources, version: .v2))),
        ]))
    }

    private static var info: JSONValue {
        .object(JSONObject([("title", .string("Kubernetes")), ("version", .string("v1.\(APIDiscovery.kubernetesMinor).0"))]))
    }

    /// The schemas of `served` and every schema they refer to.
    private func definitions(of served: [APIResource], version: KubeProtoSchema.OpenAPIVersion) -> JSONObject {
        var definitions = JSONObject()
        var builtIn: [KubeProtoSchema.ServedKind] = []
        var custom = false
        for resource in served {
            if let schema = customSchemas[resource.storageName + "/" + resource.version] {
                definitions[Self.schemaName(resource)] = Self.described(schema, resource: resource, version: version)
                custom = true
            } else {
                builtIn.append(KubeProtoSchema.ServedKind(group: resource.group, version: resource.version, kind: resource.kind))
            }
        }
        let schemas = KubeProtoSchema.builtIn
        var made = schemas.openAPIDefinitions(for: builtIn, version: version)
        if custom { made += schemas.openAPIDefinitions(ofMessages: [Self.objectMeta], version: version) }
        for (name, schema) in made where definitions[name] == nil { definitions[name] = schema }
        return definitions
    }

    /// Each kind's PATCH and PUT operations with the query parameters the server takes.
    private func paths(of served: [APIResource], version: KubeProtoSchema.OpenAPIVersion) -> JSONObject {
        var paths = JSONObject()
        for resource in served {
            let base = resource.group.isEmpty ? "/api/\(resource.version)" : "/apis/\(resource.group)/\(resource.version)"
            let item = resource.namespaced ? "\(base)/namespaces/{namespace}/\(resource.plural)/{name}" : "\(base)/\(resource.plural)/{name}"
            let kind = JSONValue.object(JSONObject([
                ("group", .string(resource.group)), ("version", .string(resource.version)), ("kind", .string(resource.kind)),
            ]))
            let parameters = JSONValue.array(["fieldValidation", "fieldManager", "dryRun"].map { name in
                switch version {
                case .v3:
                    .object(JSONObject([("name", .string(name)), ("in", .string("query")), ("schema", .object(JSONObject([("type", .string("string"))])))]))
                case .v2:
                    .object(JSONObject([("name", .string(name)), ("in", .string("query")), ("type", .string("string")), ("uniqueItems", .bool(true))]))
                }
            })
            let operation = { (id: String) in
                JSONValue.object(JSONObject([
                    ("operationId", .string("\(id)\(resource.kind)")), ("x-kubernetes-group-version-kind", kind), ("parameters", parameters),
                    ("responses", .object(JSONObject())),
                ]))
            }
            paths[item] = .object(JSONObject([("patch", operation("patch")), ("put", operation("replace"))]))
        }
        return paths
    }

    private static let objectMeta = "k8s.io.apimachinery.pkg.apis.meta.v1.ObjectMeta"

    /// `com.example.v1.Widget` for group `example.com`: Kubernetes' reverse-domain schema names.
    private static func schemaName(_ resource: APIResource) -> String {
        (resource.group.split(separator: ".").reversed().map(String.init) + [resource.version, resource.kind]).joined(separator: ".")
    }

    /// A custom resource's schema with the members every object has (its metadata the built-in
    /// `ObjectMeta`) and its kind's tag. A v2 document takes the schema as it is, apart from the
    /// `$ref` to the metadata's definition.
    private static func described(_ schema: JSONValue, resource: APIResource, version: KubeProtoSchema.OpenAPIVersion) -> JSONValue {
        var schema = schema
        var properties = schema["properties"]?.objectValue ?? JSONObject()
        for name in ["apiVersion", "kind"] where properties[name] == nil {
            properties[name] = .object(JSONObject([("type", .string("string"))]))
        }
        let prefix = version == .v2 ? "#/definitions/" : "#/components/schemas/"
        properties["metadata"] = .object(JSONObject([("$ref", .string(prefix + KubeProtoSchema.definitionName(ofMessage: objectMeta)))]))
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
