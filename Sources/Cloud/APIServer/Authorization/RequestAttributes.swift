import KubeModel
import NIOHTTP1

/// What a request asks to do, in the terms authorization rules are written in: a verb on a
/// resource (group, resource, subresource, namespace, name) or on a path.
struct RequestAttributes: Sendable, Equatable {
    var verb: String
    var apiGroup = ""
    var resource = ""
    var subresource = ""
    var namespace = ""
    var name = ""
    /// The URL path of a request for no resource (discovery, OpenAPI, `/version`).
    var path = ""
    var isResourceRequest: Bool

    /// A request for a resource: the verb kube-apiserver derives from the method and target.
    init(method: HTTPMethod, route: APIRoute, watch: Bool) {
        switch method {
        case .GET, .HEAD: verb = watch ? "watch" : route.name == nil ? "list" : "get"
        case .POST: verb = "create"
        case .PUT: verb = "update"
        case .PATCH: verb = "patch"
        case .DELETE: verb = route.name == nil ? "deletecollection" : "delete"
        default: verb = String(describing: method).lowercased()
        }
        apiGroup = route.resource.group
        resource = route.resource.plural
        subresource = route.subresource ?? ""
        namespace = route.namespace ?? ""
        name = route.name ?? ""
        isResourceRequest = true
    }

    /// A request for a path that names no resource.
    init(method: HTTPMethod, path: String) {
        verb = method == .GET || method == .HEAD ? "get" : String(describing: method).lowercased()
        self.path = path
        isResourceRequest = false
    }

    /// An access review's question (`spec.resourceAttributes` or `spec.nonResourceAttributes`).
    init(verb: String, apiGroup: String, resource: String, subresource: String, namespace: String, name: String) {
        self.verb = verb
        self.apiGroup = apiGroup
        self.resource = resource
        self.subresource = subresource
        self.namespace = namespace
        self.name = name
        isResourceRequest = true
    }

    init(verb: String, path: String) {
        self.verb = verb
        self.path = path
        isResourceRequest = false
    }

    /// kube-apiserver's reason for a refusal:
    /// `User "alice" cannot list resource "pods" in API group "" in the namespace "default"`.
    func refusal(for user: UserInfo) -> String {
        guard isResourceRequest else { return "User \"\(user.name)\" cannot \(verb) path \"\(path)\"" }
        let target = subresource.isEmpty ? resource : resource + "/" + subresource
        let scope = namespace.isEmpty ? "at the cluster scope" : "in the namespace \"\(namespace)\""
        return "User \"\(user.name)\" cannot \(verb) resource \"\(target)\" in API group \"\(apiGroup)\" \(scope)"
    }

    /// kube-apiserver's 403: `pods "web" is forbidden: User …`.
    func forbidden(for user: UserInfo) -> APIError {
        let subject: String
        if !isResourceRequest {
            subject = "forbidden"
        } else {
            let qualified = apiGroup.isEmpty ? resource : resource + "." + apiGroup
            subject = name.isEmpty ? "\(qualified) is forbidden" : "\(qualified) \"\(name)\" is forbidden"
        }
        var details = JSONObject()
        if isResourceRequest {
            if !name.isEmpty { details["name"] = .string(name) }
            if !apiGroup.isEmpty { details["group"] = .string(apiGroup) }
            details["kind"] = .string(resource)
        }
        return APIError(code: 403, reason: "Forbidden", message: "\(subject): \(refusal(for: user))", details: .object(details))
    }
}
