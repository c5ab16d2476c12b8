import Foundation
import KubeModel

/// What a request path names: a resource collection or one object (optionally its `status`),
/// or a discovery document.
enum APIPath: Equatable {
    case version
    case coreVersions
    case groups
    case resourceList(group: String, version: String)
    case resource(APIRoute)
}

/// A resource request: which resource, namespace and object.
struct APIRoute: Equatable {
    var resource: APIResource
    /// `nil`: every namespace (lists and watches of namespaced resources).
    var namespace: String?
    /// `nil`: the collection.
    var name: String?
    /// `status`, `scale`, `token` (of a ServiceAccount), or `nil`.
    var subresource: String?

    var key: ObjectKey? {
        guard let name else { return nil }
        return ObjectKey(resource: resource.storageName, namespace: namespace ?? "", name: name)
    }

    /// The subresources of pods besides `status`.
    static let podSubresources: Set<String> = ["binding", "eviction", "log", "exec", "attach", "portforward"]

    /// Parses `/api/v1/...` and `/apis/{group}/{version}/...` paths (`/watch/` prefixes included,
    /// reported through `watch`). `nil` for paths no served resource matches.
    static func parse(path: String, resources: [APIResource]) -> (path: APIPath, watch: Bool)? {
        var segments = path.split(separator: "/").map { String($0).removingPercentEncoding ?? String($0) }
        if path == "/version" || path == "/version/" { return (.version, false) }
        guard let root = segments.first else { return nil }
        segments.removeFirst()
        let group: String
        if root == "api" {
            guard !segments.isEmpty else { return (.coreVersions, false) }
            group = ""
        } else if root == "apis" {
            guard !segments.isEmpty else { return (.groups, false) }
            group = segments.removeFirst()
            guard !segments.isEmpty else { return nil }
        } else {
            return nil
        }
        let version = segments.removeFirst()
        guard !segments.isEmpty else { return (.resourceList(group: group, version: version), false) }
        var watch = false
        if segments.first == "watch" {
            watch = true
            segments.removeFirst()
        }
        let served = resources.filter { $0.group == group && $0.version == version }
        var namespace: String?
        // `namespaces/{ns}/{plural}...` is inside a namespace; `namespaces/{name}[/status]` is a Namespace.
        if segments.count >= 3, segments[0] == "namespaces", segments[2] != "status" {
            namespace = segments[1]
            segments.removeFirst(2)
        }
        guard let plural = segments.first, let resource = served.first(where: { $0.plural == plural }), segments.count <= 3 else { return nil }
        if namespace != nil, !resource.namespaced { return nil }
        let name = segments.count >= 2 ? segments[1] : nil
        let subresource = segments.count == 3 ? segments[2] : nil
        if let subresource, !(subresource == "status" && resource.hasStatus) && !(subresource == "scale" && resource.hasScale)
            && !(subresource == "token" && resource.storageName == "serviceaccounts")
            && !(Self.podSubresources.contains(subresource) && resource.storageName == "pods") { return nil }
        return (.resource(APIRoute(resource: resource, namespace: namespace, name: name, subresource: subresource)), watch)
    }
}
