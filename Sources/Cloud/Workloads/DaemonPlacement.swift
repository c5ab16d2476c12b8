import KubeModel

/// Where a DaemonSet's pods belong, as kube's daemon controller decides it: a node should run
/// the daemon pod when the pod's `nodeSelector` and required node affinity match it and the pod
/// tolerates its `NoSchedule` and `NoExecute` taints; a pod already there keeps running as long
/// as the `NoExecute` taints are tolerated. Daemon pods tolerate what kube adds to them: nodes
/// that are not ready or unreachable (`NoExecute`), under disk, memory or PID pressure and
/// cordoned (`NoSchedule`), and with `hostNetwork` a node whose network is unavailable.
enum DaemonPlacement {
    /// The tolerations kube's daemon controller adds to every daemon pod.
    static func defaultTolerations(hostNetwork: Bool) -> [JSONValue] {
        var tolerations: [(String, String)] = [
            ("node.kubernetes.io/not-ready", "NoExecute"), ("node.kubernetes.io/unreachable", "NoExecute"),
            ("node.kubernetes.io/disk-pressure", "NoSchedule"), ("node.kubernetes.io/memory-pressure", "NoSchedule"),
            ("node.kubernetes.io/pid-pressure", "NoSchedule"), ("node.kubernetes.io/unschedulable", "NoSchedule"),
        ]
        if hostNetwork { tolerations.append(("node.kubernetes.io/network-unavailable", "NoSchedule")) }
        return tolerations.map { key, effect in
            .object(JSONObject([("key", .string(key)), ("operator", .string("Exists")), ("effect", .string(effect))]))
        }
    }

    /// The template's pod with the default tolerations it lacks, as it will be created.
    static func podWithTolerations(_ template: JSONValue) -> JSONValue {
        var pod = template
        var tolerations = pod[path: ["spec", "tolerations"]]?.arrayValue ?? []
        let hostNetwork = pod[path: ["spec", "hostNetwork"]]?.boolValue == true
        for toleration in defaultTolerations(hostNetwork: hostNetwork) where !tolerations.contains(where: {
            $0["key"] == toleration["key"] && $0["effect"] == toleration["effect"]
        }) {
            tolerations.append(toleration)
        }
        pod.set(.array(tolerations), at: ["spec", "tolerations"])
        return pod
    }

    /// Whether a new daemon pod belongs on `node`, and whether one already there may stay.
    static func decide(_ pod: JSONValue, on node: JSONValue) -> (shouldRun: Bool, shouldContinueRunning: Bool) {
        let filters = SchedulingFilters()
        guard filters.matchesSelectorAndAffinity(SchedulingPod(pod), node: SchedulingNode(node)) else { return (false, false) }
        var shouldRun = true
        for taint in node[path: ["spec", "taints"]]?.arrayValue ?? [] where !filters.tolerates(pod, taint) {
            switch taint["effect"]?.stringValue {
            case "NoExecute": return (false, false)
            case "NoSchedule": shouldRun = false
            default: break
            }
        }
        return (shouldRun, true)
    }

    /// The pod's required node affinity replaced by one that names `node` (`matchFields` on
    /// `metadata.name`), so the scheduler binds it there and nowhere else.
    static func pinned(_ pod: JSONValue, to node: String) -> JSONValue {
        var pinned = pod
        pinned.set(.object(JSONObject([("nodeSelectorTerms", .array([.object(JSONObject([("matchFields", .array([.object(JSONObject([
            ("key", .string("metadata.name")), ("operator", .string("In")), ("values", .array([.string(node)])),
        ]))]))]))]))])), at: ["spec", "affinity", "nodeAffinity", "requiredDuringSchedulingIgnoredDuringExecution"])
        return pinned
    }

    /// The node a daemon pod is bound or pinned to.
    static func targetNode(of pod: JSONValue) -> String? {
        if let name = pod[path: ["spec", "nodeName"]]?.stringValue, !name.isEmpty { return name }
        let terms = pod[path: ["spec", "affinity", "nodeAffinity", "requiredDuringSchedulingIgnoredDuringExecution", "nodeSelectorTerms"]]?.arrayValue ?? []
        for term in terms {
            for field in term["matchFields"]?.arrayValue ?? [] where field["key"]?.stringValue == "metadata.name" && field["operator"]?.stringValue == "In" {
                if let values = field["values"]?.arrayValue, values.count == 1, let name = values[0].stringValue { return name }
            }
        }
        return nil
    }
}
