/// The address of one object in KubeEdge's resource form `{namespace}/{type}/{name}`, with
/// `null` (or nothing) as the namespace of cluster-scoped objects; `{namespace}/{type}` names
/// every object of a type in a namespace.
public struct ResourceKey: Hashable, Sendable, CustomStringConvertible {
    /// The namespace; empty for cluster-scoped objects.
    public var namespace: String
    /// The resource type, lower case and singular (`pod`, `configmap`, `node`).
    public var type: String
    /// The object name; empty when the key names a whole type.
    public var name: String

    /// Creates a key.
    public init(namespace: String, type: String, name: String) {
        self.namespace = namespace == "null" ? "" : namespace
        self.type = type
        self.name = name
    }

    /// Parses `{namespace}/{type}/{name}` or `{namespace}/{type}`; `nil` for anything else
    /// (an empty type, extra segments, a segment that is too long).
    public init?(resource: String) {
        let parts = resource.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2 || parts.count == 3, parts.allSatisfy({ $0.utf8.count <= 253 }), !parts[1].isEmpty else { return nil }
        if parts.count == 3, parts[2].isEmpty { return nil }
        self.init(namespace: String(parts[0]), type: String(parts[1]), name: parts.count == 3 ? String(parts[2]) : "")
    }

    /// Whether the key names one object rather than a type.
    public var isObject: Bool { !name.isEmpty }

    /// The resource string, `null` standing for no namespace.
    public var description: String {
        let namespace = namespace.isEmpty ? "null" : namespace
        return name.isEmpty ? "\(namespace)/\(type)" : "\(namespace)/\(type)/\(name)"
    }
}
