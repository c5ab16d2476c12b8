import KubeModel

/// The `fieldValidation` of a write (`Strict`, `Warn` — the default, as in Kubernetes since
/// 1.23 — or `Ignore`): fields the server does not know are refused with 400, reported in a
/// `Warning` header, or let through.
///
/// Without full schemas the server knows the fields at the levels where typos are most common
/// and its lists are complete: each kind's top level, `metadata`, a pod's `spec` and its
/// containers. Deeper fields are not checked.
enum FieldValidation: String {
    case strict = "Strict", warn = "Warn", ignore = "Ignore"

    init(query: [String: String]) throws(APIError) {
        guard let text = query["fieldValidation"], !text.isEmpty else {
            self = .warn
            return
        }
        guard let mode = FieldValidation(rawValue: text) else {
            throw APIError.badRequest("fieldValidation \(text) is not one of Strict, Warn or Ignore")
        }
        self = mode
    }

    /// Warnings to send, or a `400` in Strict mode.
    func check(_ object: JSONValue, kind: String, version: String) throws(APIError) -> [String] {
        try report(Self.unknownFields(in: object, kind: kind), kind: kind, version: version)
    }

    /// `unknown` (dotted paths) as warnings, or kube-apiserver's `400` in Strict mode.
    func report(_ unknown: [String], kind: String, version: String) throws(APIError) -> [String] {
        guard self != .ignore, !unknown.isEmpty else { return [] }
        if self == .strict {
            let listed = unknown.map { "unknown field \"\($0)\"" }.joined(separator: ", ")
            throw APIError.badRequest("\(kind) in version \"\(version)\" cannot be handled as a \(kind): strict decoding error: \(listed)")
        }
        return unknown.map { "unknown field \"\($0)\"" }
    }

    /// Dotted paths of the fields the kind does not have (`spec.containers[0].imagePullPolice`):
    /// at every depth for a built-in kind (its published schema), at the known levels otherwise.
    static func unknownFields(in object: JSONValue, kind: String) -> [String] {
        if let apiVersion = object["apiVersion"]?.stringValue {
            let parts = apiVersion.split(separator: "/", maxSplits: 1).map(String.init)
            let (group, version) = parts.count == 2 ? (parts[0], parts[1]) : ("", apiVersion)
            if let unknown = KubeProtoSchema.builtIn.unknownFields(in: object, group: group, version: version, kind: kind) { return unknown }
        }
        var unknown: [String] = []
        check(object, allowed: topLevel[kind] ?? customResource, path: "", into: &unknown)
        check(object["metadata"], allowed: objectMeta, path: "metadata", into: &unknown)
        if kind == "Pod" { checkPodSpec(object["spec"], path: "spec", into: &unknown) }
        return unknown
    }

    private static func checkPodSpec(_ spec: JSONValue?, path: String, into unknown: inout [String]) {
        check(spec, allowed: podSpec, path: path, into: &unknown)
        for list in ["initContainers", "containers", "ephemeralContainers"] {
            for (index, container) in (spec?[list]?.arrayValue ?? []).enumerated() {
                check(container, allowed: list == "ephemeralContainers" ? Self.container.union(["targetContainerName"]) : Self.container,
                      path: "\(path).\(list)[\(index)]", into: &unknown)
            }
        }
    }

    private static func check(_ value: JSONValue?, allowed: Set<String>, path: String, into unknown: inout [String]) {
        guard case .object(let members)? = value else { return }
        for (key, _) in members where !allowed.contains(key) { unknown.append(path.isEmpty ? key : "\(path).\(key)") }
    }

    private static let objectMeta: Set<String> = [
        "name", "generateName", "namespace", "selfLink", "uid", "resourceVersion", "generation", "creationTimestamp", "deletionTimestamp",
        "deletionGracePeriodSeconds", "labels", "annotations", "ownerReferences", "finalizers", "managedFields",
    ]

    private static let customResource: Set<String> = ["apiVersion", "kind", "metadata", "spec", "status"]

    private static let topLevel: [String: Set<String>] = [
        "Pod": customResource, "Namespace": customResource, "Node": customResource, "Service": customResource,
        "Lease": ["apiVersion", "kind", "metadata", "spec"],
        "ConfigMap": ["apiVersion", "kind", "metadata", "data", "binaryData", "immutable"],
        "Secret": ["apiVersion", "kind", "metadata", "data", "stringData", "type", "immutable"],
        "Endpoints": ["apiVersion", "kind", "metadata", "subsets"],
        "Event": [
            "apiVersion", "kind", "metadata", "involvedObject", "reason", "message", "source", "firstTimestamp", "lastTimestamp", "count", "type",
            "eventTime", "series", "action", "related", "reportingComponent", "reportingInstance",
        ],
    ]

    private static let podSpec: Set<String> = [
        "volumes", "initContainers", "containers", "ephemeralContainers", "restartPolicy", "terminationGracePeriodSeconds",
        "activeDeadlineSeconds", "dnsPolicy", "nodeSelector", "serviceAccountName", "serviceAccount", "automountServiceAccountToken", "nodeName",
        "hostNetwork", "hostPID", "hostIPC", "shareProcessNamespace", "securityContext", "imagePullSecrets", "hostname", "subdomain", "affinity",
        "schedulerName", "tolerations", "hostAliases", "priorityClassName", "priority", "dnsConfig", "readinessGates", "runtimeClassName",
        "enableServiceLinks", "preemptionPolicy", "overhead", "topologySpreadConstraints", "setHostnameAsFQDN", "os", "hostUsers",
        "schedulingGates", "resourceClaims", "resources",
    ]

    private static let container: Set<String> = [
        "name", "image", "command", "args", "workingDir", "ports", "envFrom", "env", "resources", "resizePolicy", "restartPolicy", "volumeMounts",
        "volumeDevices", "livenessProbe", "readinessProbe", "startupProbe", "lifecycle", "terminationMessagePath", "terminationMessagePolicy",
        "imagePullPolicy", "securityContext", "stdin", "stdinOnce", "tty",
    ]
}
