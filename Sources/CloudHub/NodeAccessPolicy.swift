import Transport

/// What a node may send to the cloud, checked by CloudHub on every message before any module
/// sees it. The node's name comes from its certificate, never from the message.
///
/// Resources are KubeEdge's `{namespace}/{type}/{name}` (optionally behind the cloud-internal
/// prefix `node/{node}/`, which must then name the sender). A node may send:
/// - anything about its own node (`nodeTypes`, the name must be the node's);
/// - anything about an object the cloud gave it: an object of one of `objectTypes` that the hub
///   delivered to this node (or that a module granted with ``CloudHub/grant(_:to:)``);
/// - keepalives, responses, and the operations in `openOperations` (MQTT uploads), whose
///   resource is the node's own data rather than a cluster object;
/// - the requests in `boundRequests` (service-account tokens, Events), which name no object
///   the node holds: the controller that answers authorises each from its content (the pod it
///   is bound to, the object an Event is about must be this node's).
/// Everything else is refused: unknown types too.
public struct NodeAccessPolicy: Sendable {
    /// Types that name a node; the name must be the sender's. Default `node`, `nodestatus`, `lease`.
    public var nodeTypes: Set<String>
    /// Types that name a cluster object, mapped to the object's kind (status types map to the
    /// object they report on). A batch without a name (KubeEdge's `{ns}/podstatus`) is refused:
    /// name each object.
    public var objectTypes: [String: String]
    /// Operations allowed whatever the resource. Default `keepalive`, `response`, `error`.
    public var openOperations: Set<String>
    /// Groups whose `upload`/`publish` messages carry the node's own data (MQTT). Default `user`.
    public var dataGroups: Set<String>
    /// Resource types a node may send the given operations on, each checked by the controller
    /// that takes it against the node's own pods. Default: `query` of `serviceaccounttoken`;
    /// `insert`/`update` of `event`.
    public var boundRequests: [String: Set<String>]

    /// Creates a policy with the documented defaults.
    public init(
        nodeTypes: Set<String> = ["node", "nodestatus", "lease"],
        objectTypes: [String: String] = [
            "pod": "pod", "podstatus": "pod", "device": "device", "devicestatus": "device", "twin": "device",
            "configmap": "configmap", "secret": "secret", "service": "service", "endpoints": "endpoints",
        ],
        openOperations: Set<String> = ["keepalive", "response", "error"],
        dataGroups: Set<String> = ["user"],
        boundRequests: [String: Set<String>] = ["serviceaccounttoken": ["query"], "event": ["insert", "update"]]
    ) {
        self.boundRequests = boundRequests
        self.nodeTypes = nodeTypes
        self.objectTypes = objectTypes
        self.openOperations = openOperations
        self.dataGroups = dataGroups
    }

    /// The verdict on one message.
    public enum Verdict: Equatable, Sendable {
        case allowed
        case refused(String)
    }

    /// Decides whether `node` may send `message`; `owns` answers whether the node holds an object.
    public func check(_ message: Message, from node: String, owns: (EdgeObjectKey) -> Bool) -> Verdict {
        let router = message.router
        if openOperations.contains(router.operation) { return .allowed }
        if dataGroups.contains(router.group), router.operation == "upload" || router.operation == "publish" { return .allowed }
        let parsed: ResourcePath
        switch ResourcePath.parse(router.resource) {
        case .success(let path): parsed = path
        case .failure(let refusal): return .refused(refusal.reason)
        }
        if let prefixNode = parsed.node, prefixNode != node {
            return .refused("node \(node) may not send for node \(prefixNode) (resource \(router.resource))")
        }
        if nodeTypes.contains(parsed.type) {
            guard let name = parsed.name else { return .refused("resource \(router.resource) does not name the node") }
            return name == node ? .allowed : .refused("node \(node) may not send about node \(name) (\(router.operation) \(router.resource))")
        }
        if let operations = boundRequests[parsed.type] {
            guard operations.contains(router.operation) else {
                return .refused("node \(node) may not send \(router.operation) on resource type \(parsed.type) (\(router.resource))")
            }
            return parsed.name == nil ? .refused("resource \(router.resource) names no \(parsed.type)") : .allowed
        }
        guard let kind = objectTypes[parsed.type] else {
            return .refused("node \(node) may not send \(router.operation) on resource type \(parsed.type) (\(router.resource))")
        }
        guard let name = parsed.name else {
            return .refused("resource \(router.resource) names no \(kind): name each object")
        }
        let object = EdgeObjectKey(kind: kind, namespace: parsed.namespace, name: name)
        return owns(object) ? .allowed : .refused("node \(node) may not send about \(object), which is not assigned to it (\(router.operation) \(router.resource))")
    }

    /// The object a cloud→node message delivers, if its type is one the policy tracks.
    func object(in parsed: ResourcePath) -> EdgeObjectKey? {
        guard let kind = objectTypes[parsed.type], let name = parsed.name else { return nil }
        // Only the object itself assigns it, not its status.
        guard parsed.type == kind else { return nil }
        return EdgeObjectKey(kind: kind, namespace: parsed.namespace, name: name)
    }
}

/// A resource string taken apart: `[node/{node}/]{namespace}/{type}[/{name}]`.
struct ResourcePath: Equatable {
    var node: String?
    var namespace: String
    var type: String
    var name: String?

    static func parse(_ resource: String) -> Result<ResourcePath, Refusal> {
        // One pass over the bytes; runs for every message a node sends.
        let bytes = resource.utf8
        var slashes: [String.Index] = []
        slashes.reserveCapacity(4)
        var index = bytes.startIndex
        while index != bytes.endIndex, slashes.count < 4 {
            if bytes[index] == UInt8(ascii: "/") { slashes.append(index) }
            index = bytes.index(after: index)
        }
        var node: String?
        var start = resource.startIndex
        var cuts = slashes[...]
        if let firstSlash = slashes.first, resource[resource.startIndex..<firstSlash] == "node" {
            guard slashes.count >= 2 else { return .failure(Refusal("resource \"\(resource)\" is not node/{node}/{namespace}/{type}/{name}")) }
            node = String(resource[resource.index(after: slashes[0])..<slashes[1]])
            start = resource.index(after: slashes[1])
            cuts = slashes[2...]
        }
        guard let first = cuts.first else {
            return .failure(Refusal("resource \"\(resource)\" is not {namespace}/{type}/{name}"))
        }
        let namespace = resource[start..<first]
        let typeEnd = cuts.dropFirst().first ?? resource.endIndex
        let type = resource[resource.index(after: first)..<typeEnd]
        guard !namespace.isEmpty, !type.isEmpty else {
            return .failure(Refusal("resource \"\(resource)\" is not {namespace}/{type}/{name}"))
        }
        var name: String?
        if typeEnd != resource.endIndex {
            let rest = resource[resource.index(after: typeEnd)...]
            if rest.isEmpty { return .failure(Refusal("resource \"\(resource)\" has an empty name")) }
            name = String(rest)
        }
        return .success(ResourcePath(node: node, namespace: String(namespace), type: String(type), name: name))
    }
}

/// Why something a node presented was refused, in words the node is told.
struct Refusal: Error, Equatable {
    let reason: String
    init(_ reason: String) { self.reason = reason }
}
