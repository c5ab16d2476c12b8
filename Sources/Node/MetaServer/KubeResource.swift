/// A Kubernetes resource MetaServer serves: its URL name, MetaManager's type, kind and API.
public struct KubeResource: Sendable, Hashable {
    /// The plural in URLs (`pods`).
    public var plural: String
    /// MetaManager's resource type (`pod`).
    public var type: String
    /// The object kind (`Pod`); lists are `{kind}List`.
    public var kind: String
    /// Empty for the core group.
    public var group: String
    public var version: String
    public var namespaced: Bool

    /// `v1` or `{group}/{version}`.
    public var apiVersion: String { group.isEmpty ? version : "\(group)/\(version)" }

    /// What MetaServer serves by default: the core objects a node holds and KubeEdge's devices.
    public static let standard: [KubeResource] = [
        KubeResource(plural: "pods", type: "pod", kind: "Pod", group: "", version: "v1", namespaced: true),
        KubeResource(plural: "configmaps", type: "configmap", kind: "ConfigMap", group: "", version: "v1", namespaced: true),
        KubeResource(plural: "secrets", type: "secret", kind: "Secret", group: "", version: "v1", namespaced: true),
        KubeResource(plural: "services", type: "service", kind: "Service", group: "", version: "v1", namespaced: true),
        KubeResource(plural: "endpoints", type: "endpoints", kind: "Endpoints", group: "", version: "v1", namespaced: true),
        KubeResource(plural: "nodes", type: "node", kind: "Node", group: "", version: "v1", namespaced: false),
        KubeResource(plural: "devices", type: "device", kind: "Device", group: "devices.kubeedge.io", version: "v1beta1", namespaced: true),
        KubeResource(plural: "devicemodels", type: "devicemodel", kind: "DeviceModel", group: "devices.kubeedge.io", version: "v1beta1", namespaced: true),
    ]
}
