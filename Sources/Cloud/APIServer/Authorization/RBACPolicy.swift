import KubeModel

/// The `rbac.authorization.k8s.io/v1` objects in force, and what they allow: a request is
/// allowed when a binding whose subjects include the user (by name, group or service account)
/// refers to a role with a rule that covers it; nothing else is (deny by default).
struct RBACPolicy: Sendable {
    /// One rule of a role.
    struct Rule: Sendable, Equatable {
        var verbs: [String]
        var apiGroups: [String]
        var resources: [String]
        var resourceNames: [String]
        var nonResourceURLs: [String]

        init(_ value: JSONValue) {
            func strings(_ key: String) -> [String] { value[key]?.arrayValue?.compactMap(\.stringValue) ?? [] }
            verbs = strings("verbs")
            apiGroups = strings("apiGroups")
            resources = strings("resources")
            resourceNames = strings("resourceNames")
            nonResourceURLs = strings("nonResourceURLs")
        }

        func allows(_ request: RequestAttributes) -> Bool {
            guard verbs.contains("*") || verbs.contains(request.verb) else { return false }
            guard request.isResourceRequest else {
                return nonResourceURLs.contains { url in
                    url == "*" || url == request.path || (url.hasSuffix("*") && request.path.hasPrefix(url.dropLast()))
                }
            }
            guard apiGroups.contains("*") || apiGroups.contains(request.apiGroup) else { return false }
            let combined = request.subresource.isEmpty ? request.resource : request.resource + "/" + request.subresource
            // `*`, the resource (with its subresource), or `*/{subresource}`, as Kubernetes matches them.
            let resourceMatches = resources.contains { resource in
                resource == "*" || resource == combined || (!request.subresource.isEmpty && resource == "*/" + request.subresource)
            }
            guard resourceMatches else { return false }
            return resourceNames.isEmpty || resourceNames.contains(request.name)
        }
    }

    /// A binding's subjects and the role it grants.
    struct Binding: Sendable {
        var name: String
        var namespace: String
        var roleKind: String
        var roleName: String
        var users: Set<String>
        var groups: Set<String>
        /// Service accounts as `namespace/name`.
        var serviceAccounts: Set<String>

        init(_ object: JSONValue) {
            name = object[path: ["metadata", "name"]]?.stringValue ?? ""
            namespace = object[path: ["metadata", "namespace"]]?.stringValue ?? ""
            roleKind = object[path: ["roleRef", "kind"]]?.stringValue ?? ""
            roleName = object[path: ["roleRef", "name"]]?.stringValue ?? ""
            var users = Set<String>(), groups = Set<String>(), serviceAccounts = Set<String>()
            for subject in object["subjects"]?.arrayValue ?? [] {
                let name = subject["name"]?.stringValue ?? ""
                switch subject["kind"]?.stringValue {
                case "User": users.insert(name)
                case "Group": groups.insert(name)
                case "ServiceAccount":
                    let home = subject["namespace"]?.stringValue ?? ""
                    serviceAccounts.insert((home.isEmpty ? namespace : home) + "/" + name)
                default: continue
                }
            }
            self.users = users
            self.groups = groups
            self.serviceAccounts = serviceAccounts
        }

        /// The subject through which the binding reaches `user`: `User "alice"`, `Group "g"` or
        /// `ServiceAccount "name/namespace"`.
        func subject(matching user: UserInfo) -> String {
            if users.contains(user.name) { return "User \"\(user.name)\"" }
            if let group = user.groups.first(where: groups.contains) { return "Group \"\(group)\"" }
            let parts = user.name.split(separator: ":")
            return parts.count == 4 ? "ServiceAccount \"\(parts[3])/\(parts[2])\"" : "User \"\(user.name)\""
        }

        func applies(to user: UserInfo) -> Bool {
            if users.contains(user.name) || !groups.isDisjoint(with: user.groups) { return true }
            let prefix = "system:serviceaccount:"
            guard user.name.hasPrefix(prefix) else { return false }
            let parts = user.name.dropFirst(prefix.count).split(separator: ":", maxSplits: 1)
            return parts.count == 2 && serviceAccounts.contains(parts[0] + "/" + parts[1])
        }
    }

    /// ClusterRoles by name (aggregated roles already hold the rules of the roles they select).
    private(set) var clusterRoles: [String: [Rule]] = [:]
    /// Roles by `namespace/name`.
    private(set) var roles: [String: [Rule]] = [:]
    private(set) var clusterBindings: [Binding] = []
    /// RoleBindings by namespace.
    private(set) var bindings: [String: [Binding]] = [:]

    init() {}

    /// The policy of these objects. An aggregated ClusterRole's rules are those of every
    /// ClusterRole its `aggregationRule` selects by label, as Kubernetes' aggregation
    /// controller writes them.
    init(clusterRoles: [JSONValue], roles: [JSONValue], clusterRoleBindings: [JSONValue], roleBindings: [JSONValue]) {
        var byName: [String: JSONValue] = [:]
        for role in clusterRoles { if let name = role[path: ["metadata", "name"]]?.stringValue { byName[name] = role } }
        // An aggregated role's rules are its selected roles' (themselves aggregated, `edit`
        // into `admin`), in place of its own, as the aggregation controller stores them.
        var resolved: [String: [Rule]] = [:]
        func rules(of name: String, visiting: Set<String>) -> [Rule] {
            if let done = resolved[name] { return done }
            guard let role = byName[name] else { return [] }
            guard let selectors = role[path: ["aggregationRule", "clusterRoleSelectors"]]?.arrayValue else {
                return (role["rules"]?.arrayValue ?? []).map(Rule.init)
            }
            var found: [Rule] = []
            for (otherName, other) in byName.sorted(by: { $0.key < $1.key }) where otherName != name && !visiting.contains(otherName) {
                let labels = other[path: ["metadata", "labels"]]?.objectValue ?? JSONObject()
                guard selectors.contains(where: { Self.selects($0, labels) }) else { continue }
                for rule in rules(of: otherName, visiting: visiting.union([name])) where !found.contains(rule) { found.append(rule) }
            }
            resolved[name] = found
            return found
        }
        for name in byName.keys { self.clusterRoles[name] = rules(of: name, visiting: []) }
        for role in roles {
            let key = (role[path: ["metadata", "namespace"]]?.stringValue ?? "") + "/" + (role[path: ["metadata", "name"]]?.stringValue ?? "")
            self.roles[key] = (role["rules"]?.arrayValue ?? []).map(Rule.init)
        }
        clusterBindings = clusterRoleBindings.map(Binding.init).filter { $0.roleKind == "ClusterRole" }
        for binding in roleBindings.map(Binding.init) { bindings[binding.namespace, default: []].append(binding) }
    }

    /// Whether a label selector (`matchLabels`, `matchExpressions` with In, NotIn, Exists and
    /// DoesNotExist) selects `labels`.
    static func selects(_ selector: JSONValue, _ labels: JSONObject) -> Bool {
        for (key, value) in selector["matchLabels"]?.objectValue ?? JSONObject() where labels[key] != value { return false }
        for expression in selector["matchExpressions"]?.arrayValue ?? [] {
            let key = expression["key"]?.stringValue ?? ""
            let values = expression["values"]?.arrayValue ?? []
            let present = labels[key]
            switch expression["operator"]?.stringValue {
            case "In": if present == nil || !values.contains(present!) { return false }
            case "NotIn": if let present, values.contains(present) { return false }
            case "Exists": if present == nil { return false }
            case "DoesNotExist": if present != nil { return false }
            default: return false
            }
        }
        return true
    }

    /// Whether `user` may do `request`.
    func allows(_ user: UserInfo, _ request: RequestAttributes) -> Bool { decision(user, request) != nil }

    /// Why `user` may do `request`, as kube-apiserver's RBAC authorizer says it
    /// (`RBAC: allowed by ClusterRoleBinding "x" of ClusterRole "y" to User "z"`); `nil` when
    /// nothing allows it.
    func decision(_ user: UserInfo, _ request: RequestAttributes) -> String? {
        for binding in clusterBindings where binding.applies(to: user) {
            if clusterRoles[binding.roleName]?.contains(where: { $0.allows(request) }) == true {
                return "RBAC: allowed by ClusterRoleBinding \"\(binding.name)\" of ClusterRole \"\(binding.roleName)\" to \(binding.subject(matching: user))"
            }
        }
        guard request.isResourceRequest, !request.namespace.isEmpty else { return nil }
        for binding in bindings[request.namespace] ?? [] where binding.applies(to: user) {
            let rules = binding.roleKind == "ClusterRole" ? clusterRoles[binding.roleName] : roles[request.namespace + "/" + binding.roleName]
            if rules?.contains(where: { $0.allows(request) }) == true {
                return "RBAC: allowed by RoleBinding \"\(binding.name)/\(binding.namespace)\" of \(binding.roleKind) \"\(binding.roleName)\" to \(binding.subject(matching: user))"
            }
        }
        return nil
    }

    /// The rules that apply to `user` in `namespace` (cluster-wide ones included), for
    /// SelfSubjectRulesReview and `kubectl auth can-i --list`.
    func rules(for user: UserInfo, namespace: String) -> [Rule] {
        var found: [Rule] = []
        for binding in clusterBindings where binding.applies(to: user) { found += clusterRoles[binding.roleName] ?? [] }
        for binding in bindings[namespace] ?? [] where binding.applies(to: user) {
            found += (binding.roleKind == "ClusterRole" ? clusterRoles[binding.roleName] : roles[namespace + "/" + binding.roleName]) ?? []
        }
        return found
    }
}
