import KubeModel
/// The discovery documents kubectl reads before anything else: `/version`, `/api`, `/apis` and
/// one resource list per group version (the unaggregated forms, which kubectl falls back to).
struct APIDiscovery {
    let resources: [APIResource]

    /// A Kubernetes minor version the kubectl dispatcher accepts (1.27–1.33).
    static let kubernetesMinor = 31

    var version: JSONValue {
        object([
            ("major", .string("1")), ("minor", .string(String(Self.kubernetesMinor))),
            ("gitVersion", .string("v1.\(Self.kubernetesMinor).0-swift-kubeedge")), ("gitCommit", .string("")), ("gitTreeState", .string("clean")),
            ("buildDate", .string("2026-01-01T00:00:00Z")), ("goVersion", .string("swift")), ("compiler", .string("swiftc")),
            ("platform", .string("linux/amd64")),
        ])
    }

    var coreVersions: JSONValue {
        object([
            ("kind", .string("APIVersions")), ("versions", .array([.string("v1")])),
            ("serverAddressByClientCIDRs", .array([object([("clientCIDR", .string("0.0.0.0/0")), ("serverAddress", .string(""))])])),
        ])
    }

    var groups: JSONValue {
        var names: [String] = []
        var versions: [String: [String]] = [:]
        for resource in resources where !resource.group.isEmpty {
            if versions[resource.group] == nil { names.append(resource.group) }
            if !(versions[resource.group]?.contains(resource.version) ?? false) { versions[resource.group, default: []].append(resource.version) }
        }
        let list = names.map { name -> JSONValue in
            let entries = versions[name]!.map { version in object([("groupVersion", .string("\(name)/\(version)")), ("version", .string(version))]) }
            return object([("name", .string(name)), ("versions", .array(entries)), ("preferredVersion", entries[0])])
        }
        return object([("kind", .string("APIGroupList")), ("apiVersion", .string("v1")), ("groups", .array(list))])
    }

    /// The resource list of one group version, or `nil` when none is served.
    func resourceList(group: String, version: String) -> JSONValue? {
        let served = resources.filter { $0.group == group && $0.version == version }
        guard !served.isEmpty else { return nil }
        var entries: [JSONValue] = []
        for resource in served {
            let verbs = (resource.createOnly ? ["create"] : ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"])
                .map { JSONValue.string($0) }
            entries.append(object([
                ("name", .string(resource.plural)), ("singularName", .string(resource.singular)), ("namespaced", .bool(resource.namespaced)),
                ("kind", .string(resource.kind)), ("verbs", .array(verbs)), ("shortNames", .array(resource.shortNames.map { .string($0) })),
                ("storageVersionHash", .string("")),
            ]))
            if resource.hasScale {
                entries.append(object([
                    ("name", .string("\(resource.plural)/scale")), ("singularName", .string("")), ("namespaced", .bool(resource.namespaced)),
                    ("group", .string("autoscaling")), ("version", .string("v1")),
                    ("kind", .string("Scale")), ("verbs", .array(["get", "patch", "update"].map { .string($0) })),
                ]))
            }
            if resource.storageName == "serviceaccounts" {
                entries.append(object([
                    ("name", .string("serviceaccounts/token")), ("singularName", .string("")), ("namespaced", .bool(true)),
                    ("group", .string("authentication.k8s.io")), ("version", .string("v1")),
                    ("kind", .string("TokenRequest")), ("verbs", .array([.string("create")])),
                ]))
            }
            if resource.storageName == "pods" {
                entries.append(object([
                    ("name", .string("pods/binding")), ("singularName", .string("")), ("namespaced", .bool(true)),
                    ("kind", .string("Binding")), ("verbs", .array([.string("create")])),
                ]))
                entries.append(object([
                    ("name", .string("pods/eviction")), ("singularName", .string("")), ("namespaced", .bool(true)),
                    ("group", .string("policy")), ("version", .string("v1")),
                    ("kind", .string("Eviction")), ("verbs", .array([.string("create")])),
                ]))
            }
            if resource.hasStatus {
                entries.append(object([
                    ("name", .string("\(resource.plural)/status")), ("singularName", .string("")), ("namespaced", .bool(resource.namespaced)),
                    ("kind", .string(resource.kind)), ("verbs", .array(["get", "patch", "update"].map { .string($0) })),
                ]))
            }
        }
        return object([
            ("kind", .string("APIResourceList")), ("apiVersion", .string("v1")),
            ("groupVersion", .string(group.isEmpty ? version : "\(group)/\(version)")), ("resources", .array(entries)),
        ])
    }

    private func object(_ members: [(String, JSONValue)]) -> JSONValue { .object(JSONObject(members)) }
}
