import KubeModel
import Synchronization

/// What the API server serves now: the built-in table and the resources that established
/// CustomResourceDefinitions add, with the discovery documents of both. Replaced as a whole
/// when a definition is created, changed or deleted.
final class ServedResources: Sendable {
    struct Snapshot: Sendable {
        let resources: [APIResource]
        let discovery: APIDiscovery
        let openAPI: APIOpenAPI
        /// The schema of each custom resource version, by `{storageName}/{version}`.
        let schemas: [String: StructuralSchema]
        /// The `additionalPrinterColumns` of each custom resource version, by the same key.
        let printerColumns: [String: [JSONValue]]
        /// The `subresources.scale` of each custom resource version that has one, by the same key.
        let scales: [String: JSONValue]

        func scale(of resource: APIResource) -> JSONValue? {
            scales[resource.storageName + "/" + resource.version] ?? ServedResources.builtInScales[resource.storageName + "/" + resource.version]
        }

        /// The storage names of custom resources (every version of a kind shares one).
        let customStorageNames: Set<String>

        func isCustom(_ resource: APIResource) -> Bool { customStorageNames.contains(resource.storageName) }

        func schema(of resource: APIResource) -> StructuralSchema? { schemas[resource.storageName + "/" + resource.version] }
        func printerColumns(of resource: APIResource) -> [JSONValue]? { printerColumns[resource.storageName + "/" + resource.version] }
    }

    private let builtIn: [APIResource]
    private let current: Mutex<Snapshot>

    /// The `scale` subresource of the built-in kinds that have one, in a definition's terms.
    static let builtInScales: [String: JSONValue] = {
        let paths = JSONValue.object(JSONObject([
            ("specReplicasPath", .string(".spec.replicas")), ("statusReplicasPath", .string(".status.replicas")),
            ("labelSelectorPath", .string(".spec.selector")),
        ]))
        return ["deployments.apps/v1": paths, "replicasets.apps/v1": paths]
    }()

    init(builtIn: [APIResource]) {
        self.builtIn = builtIn
        current = Mutex(Snapshot(resources: builtIn, discovery: APIDiscovery(resources: builtIn), openAPI: APIOpenAPI(resources: builtIn), schemas: [:], printerColumns: [:], scales: [:], customStorageNames: []))
    }

    var snapshot: Snapshot { current.withLock { $0 } }

    /// Serves the built-in resources and those of `definitions` (CustomResourceDefinition
    /// objects): every served version of each, under its group, names and scope.
    func update(definitions: [JSONValue]) {
        var resources = builtIn
        var schemas: [String: StructuralSchema] = [:]
        var printerColumns: [String: [JSONValue]] = [:]
        var openAPISchemas: [String: JSONValue] = [:]
        var scales: [String: JSONValue] = [:]
        for definition in definitions {
            let added = Self.resources(of: definition).filter { added in !resources.contains { $0.storageName == added.storageName && $0.version == added.version } }
            resources += added
            for resource in added {
                let version = definition[path: ["spec", "versions"]]?.arrayValue?.first { $0["name"]?.stringValue == resource.version }
                let key = resource.storageName + "/" + resource.version
                if let schema = version?[path: ["schema", "openAPIV3Schema"]] {
                    schemas[key] = StructuralSchema(root: schema)
                    openAPISchemas[key] = schema
                }
                if let columns = version?["additionalPrinterColumns"]?.arrayValue { printerColumns[key] = columns }
                if let scale = version?[path: ["subresources", "scale"]] { scales[key] = scale }
            }
        }
        let snapshot = Snapshot(resources: resources, discovery: APIDiscovery(resources: resources),
                                openAPI: APIOpenAPI(resources: resources, customSchemas: openAPISchemas), schemas: schemas, printerColumns: printerColumns, scales: scales,
                                customStorageNames: Set(resources.dropFirst(builtIn.count).map(\.storageName)))
        current.withLock { $0 = snapshot }
    }

    /// The resources one definition serves (one per served version).
    static func resources(of definition: JSONValue) -> [APIResource] {
        guard let group = definition[path: ["spec", "group"]]?.stringValue, let plural = definition[path: ["spec", "names", "plural"]]?.stringValue,
              let kind = definition[path: ["spec", "names", "kind"]]?.stringValue else { return [] }
        let singular = definition[path: ["spec", "names", "singular"]]?.stringValue ?? kind.lowercased()
        let shortNames = definition[path: ["spec", "names", "shortNames"]]?.arrayValue?.compactMap(\.stringValue) ?? []
        let namespaced = definition[path: ["spec", "scope"]]?.stringValue != "Cluster"
        return (definition[path: ["spec", "versions"]]?.arrayValue ?? []).compactMap { version in
            guard version["served"]?.boolValue == true, let name = version["name"]?.stringValue else { return nil }
            return APIResource(group: group, version: name, plural: plural, singular: singular, kind: kind, namespaced: namespaced,
                               shortNames: shortNames, hasStatus: version[path: ["subresources", "status"]] != nil,
                               hasScale: version[path: ["subresources", "scale"]] != nil)
        }
    }
}
