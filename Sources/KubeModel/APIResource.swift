/// One Kubernetes resource type: its group and version, URL names and kind. The one table of
/// them, ``standard``, is what the cloud's embedded API server serves; the edge's MetaServer
/// serves a selection of it.
public struct APIResource: Sendable, Hashable {
    /// Empty for the core group.
    public var group: String
    public var version: String
    /// The URL name (`pods`).
    public var plural: String
    /// The singular name, lower case (`pod`, `endpoints`); KubeEdge's resource type (see ``edgeType``).
    public var singular: String
    /// The object kind (`Pod`); lists are `{kind}List`.
    public var kind: String
    public var namespaced: Bool
    /// What kubectl also accepts for the plural (`po`).
    public var shortNames: [String]
    /// Whether `{plural}/status` is served (status updates that leave the spec alone).
    public var hasStatus: Bool
    /// Whether `{plural}/scale` is served (an `autoscaling/v1` `Scale` of the object).
    public var hasScale: Bool
    /// A kind that is only ever created, answered and never stored (access and token reviews).
    public var createOnly: Bool

    /// Creates a resource type.
    public init(group: String, version: String, plural: String, singular: String, kind: String, namespaced: Bool,
                shortNames: [String] = [], hasStatus: Bool = false, hasScale: Bool = false, createOnly: Bool = false) {
        self.hasScale = hasScale
        self.createOnly = createOnly
        self.group = group
        self.version = version
        self.plural = plural
        self.singular = singular
        self.kind = kind
        self.namespaced = namespaced
        self.shortNames = shortNames
        self.hasStatus = hasStatus
    }

    /// `v1` or `{group}/{version}`.
    public var groupVersion: String { group.isEmpty ? version : "\(group)/\(version)" }

    /// The storage name: `pods`, or `devices.devices.kubeedge.io` (Kubernetes' `plural.group`).
    public var storageName: String { group.isEmpty ? plural : "\(plural).\(group)" }

    /// The type as KubeEdge's resource strings (`{namespace}/{type}/{name}`) and the edge's
    /// MetaManager name it: the singular (`pod`, `configmap`, `endpoints`, `devicemodel`).
    public var edgeType: String { singular }

    /// Where objects of a typed kind live (`Kube.Pod` → `/api/v1/…/pods`).
    public init<Object: KubeObject>(_ type: Object.Type) {
        let parts = Object.apiVersion.split(separator: "/", maxSplits: 1)
        self.init(group: parts.count == 2 ? String(parts[0]) : "", version: String(parts.last ?? ""), plural: Object.plural,
                  singular: Object.kind.lowercased(), kind: Object.kind, namespaced: Object.namespaced)
    }

    /// Every resource type this project knows, and what the cloud's embedded API server serves:
    /// the core objects KubeEdge moves between cloud and edge, leases, and KubeEdge's CRDs.
    public static let standard: [APIResource] = [
        APIResource(group: "", version: "v1", plural: "namespaces", singular: "namespace", kind: "Namespace", namespaced: false, shortNames: ["ns"], hasStatus: true),
        APIResource(group: "", version: "v1", plural: "nodes", singular: "node", kind: "Node", namespaced: false, shortNames: ["no"], hasStatus: true),
        APIResource(group: "", version: "v1", plural: "pods", singular: "pod", kind: "Pod", namespaced: true, shortNames: ["po"], hasStatus: true),
        APIResource(group: "", version: "v1", plural: "configmaps", singular: "configmap", kind: "ConfigMap", namespaced: true, shortNames: ["cm"]),
        APIResource(group: "", version: "v1", plural: "secrets", singular: "secret", kind: "Secret", namespaced: true),
        APIResource(group: "", version: "v1", plural: "services", singular: "service", kind: "Service", namespaced: true, shortNames: ["svc"], hasStatus: true),
        APIResource(group: "", version: "v1", plural: "endpoints", singular: "endpoints", kind: "Endpoints", namespaced: true, shortNames: ["ep"]),
        APIResource(group: "", version: "v1", plural: "events", singular: "event", kind: "Event", namespaced: true, shortNames: ["ev"]),
        APIResource(group: "", version: "v1", plural: "serviceaccounts", singular: "serviceaccount", kind: "ServiceAccount", namespaced: true, shortNames: ["sa"]),
        APIResource(group: "apps", version: "v1", plural: "deployments", singular: "deployment", kind: "Deployment", namespaced: true,
                    shortNames: ["deploy"], hasStatus: true, hasScale: true),
        APIResource(group: "apps", version: "v1", plural: "replicasets", singular: "replicaset", kind: "ReplicaSet", namespaced: true,
                    shortNames: ["rs"], hasStatus: true, hasScale: true),
        APIResource(group: "apps", version: "v1", plural: "daemonsets", singular: "daemonset", kind: "DaemonSet", namespaced: true,
                    shortNames: ["ds"], hasStatus: true),
        APIResource(group: "apps", version: "v1", plural: "controllerrevisions", singular: "controllerrevision", kind: "ControllerRevision", namespaced: true),
        APIResource(group: "batch", version: "v1", plural: "jobs", singular: "job", kind: "Job", namespaced: true, hasStatus: true),
        APIResource(group: "batch", version: "v1", plural: "cronjobs", singular: "cronjob", kind: "CronJob", namespaced: true, shortNames: ["cj"], hasStatus: true),
        APIResource(group: "apiextensions.k8s.io", version: "v1", plural: "customresourcedefinitions", singular: "customresourcedefinition",
                    kind: "CustomResourceDefinition", namespaced: false, shortNames: ["crd", "crds"], hasStatus: true),
        APIResource(group: "coordination.k8s.io", version: "v1", plural: "leases", singular: "lease", kind: "Lease", namespaced: true),
        APIResource(group: "rbac.authorization.k8s.io", version: "v1", plural: "clusterroles", singular: "clusterrole", kind: "ClusterRole", namespaced: false),
        APIResource(group: "rbac.authorization.k8s.io", version: "v1", plural: "clusterrolebindings", singular: "clusterrolebinding", kind: "ClusterRoleBinding",
                    namespaced: false),
        APIResource(group: "rbac.authorization.k8s.io", version: "v1", plural: "roles", singular: "role", kind: "Role", namespaced: true),
        APIResource(group: "rbac.authorization.k8s.io", version: "v1", plural: "rolebindings", singular: "rolebinding", kind: "RoleBinding", namespaced: true),
        APIResource(group: "authorization.k8s.io", version: "v1", plural: "selfsubjectaccessreviews", singular: "selfsubjectaccessreview",
                    kind: "SelfSubjectAccessReview", namespaced: false, createOnly: true),
        APIResource(group: "authorization.k8s.io", version: "v1", plural: "selfsubjectrulesreviews", singular: "selfsubjectrulesreview",
                    kind: "SelfSubjectRulesReview", namespaced: false, createOnly: true),
        APIResource(group: "authorization.k8s.io", version: "v1", plural: "subjectaccessreviews", singular: "subjectaccessreview",
                    kind: "SubjectAccessReview", namespaced: false, createOnly: true),
        APIResource(group: "authorization.k8s.io", version: "v1", plural: "localsubjectaccessreviews", singular: "localsubjectaccessreview",
                    kind: "LocalSubjectAccessReview", namespaced: true, createOnly: true),
        APIResource(group: "authentication.k8s.io", version: "v1", plural: "selfsubjectreviews", singular: "selfsubjectreview",
                    kind: "SelfSubjectReview", namespaced: false, createOnly: true),
        APIResource(group: "authentication.k8s.io", version: "v1", plural: "tokenreviews", singular: "tokenreview",
                    kind: "TokenReview", namespaced: false, createOnly: true),
        APIResource(group: "devices.kubeedge.io", version: "v1beta1", plural: "devices", singular: "device", kind: "Device", namespaced: true, hasStatus: true),
        APIResource(group: "devices.kubeedge.io", version: "v1beta1", plural: "devicemodels", singular: "devicemodel", kind: "DeviceModel", namespaced: true),
        APIResource(group: "reliablesyncs.kubeedge.io", version: "v1alpha1", plural: "objectsyncs", singular: "objectsync", kind: "ObjectSync", namespaced: true, hasStatus: true),
        APIResource(group: "reliablesyncs.kubeedge.io", version: "v1alpha1", plural: "clusterobjectsyncs", singular: "clusterobjectsync", kind: "ClusterObjectSync", namespaced: false, hasStatus: true),
    ]

    /// The API groups of KubeEdge's own kinds, which a Kubernetes API server serves through
    /// CustomResourceDefinitions.
    public static let kubeEdgeGroups: Set<String> = ["devices.kubeedge.io", "reliablesyncs.kubeedge.io"]

    /// The kinds an API server serves without definitions: ``standard`` without KubeEdge's.
    public static let builtIn = standard.filter { !kubeEdgeGroups.contains($0.group) }
}
