import KubeModel
import Logging

/// The labels an edge node may give itself at registration: kubelet's `--node-labels` rules
/// (NodeRestriction's), so an edge cannot claim a role or a place the cluster's own labels
/// decide. Keys in the `kubernetes.io` and `k8s.io` namespaces are refused unless they are
/// kubelet's own (hostname, os, arch, instance type, zone, region) or under
/// `kubelet.kubernetes.io` or `node.kubernetes.io`; anything else is the user's.
enum NodeLabels {
    static let kubeletLabels: Set<String> = [
        "kubernetes.io/hostname", "kubernetes.io/os", "kubernetes.io/arch", "beta.kubernetes.io/os", "beta.kubernetes.io/arch",
        "beta.kubernetes.io/instance-type", "node.kubernetes.io/instance-type",
        "topology.kubernetes.io/zone", "topology.kubernetes.io/region",
        "failure-domain.beta.kubernetes.io/zone", "failure-domain.beta.kubernetes.io/region",
    ]
    static let allowedNamespaces = ["kubelet.kubernetes.io", "node.kubernetes.io"]

    /// Whether an edge may set `key` on its Node.
    static func mayBeSetByNode(_ key: String) -> Bool {
        guard let slash = key.firstIndex(of: "/") else { return true }
        let namespace = String(key[..<slash])
        let restricted = ["kubernetes.io", "k8s.io"].contains { namespace == $0 || namespace.hasSuffix("." + $0) }
        guard restricted else { return true }
        if kubeletLabels.contains(key) { return true }
        return allowedNamespaces.contains { namespace == $0 || namespace.hasSuffix("." + $0) }
    }

    /// The string labels of `requested` an edge may set; the others are logged and dropped.
    static func allowed(_ requested: JSONObject, node: String, logger: Logger) -> JSONObject {
        var kept = JSONObject()
        for (key, value) in requested {
            guard let text = value.stringValue, mayBeSetByNode(key) else {
                logger.warning("an edge node asked for a label it may not set", metadata: ["node": "\(node)", "label": "\(key)"])
                continue
            }
            kept[key] = .string(text)
        }
        return kept
    }
}
