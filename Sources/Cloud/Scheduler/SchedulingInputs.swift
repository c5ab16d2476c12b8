import KubeModel

/// A node as the scheduler reads it, parsed once per pass: name, labels, taints, whether it is
/// cordoned, and its allocatable CPU, memory and pod count.
struct SchedulingNode: Sendable {
    let name: String
    let labels: [String: String]
    let unschedulable: Bool
    let taints: [JSONValue]
    let milliCPU: Int64?
    let memory: Int64?
    let maxPods: Int64

    init(_ node: JSONValue) {
        name = node[path: ["metadata", "name"]]?.stringValue ?? ""
        labels = SchedulingFilters.labels(node)
        unschedulable = node[path: ["spec", "unschedulable"]]?.boolValue == true
        taints = (node[path: ["spec", "taints"]]?.arrayValue ?? []).filter {
            let effect = $0["effect"]?.stringValue
            return effect == "NoSchedule" || effect == "NoExecute"
        }
        let allocatable = node[path: ["status", "allocatable"]]
        milliCPU = allocatable?["cpu"]?.stringValue.flatMap(Quantity.init)?.milliValue
        memory = allocatable?["memory"]?.stringValue.flatMap(Quantity.init)?.value
        maxPods = allocatable?["pods"]?.stringValue.flatMap(Quantity.init)?.value ?? 110
    }
}

/// A pending pod as the scheduler reads it, parsed once: what it requests and every rule that
/// restricts or prefers where it goes.
struct SchedulingPod: Sendable {
    /// A required inter-pod (anti-)affinity term.
    struct PodTerm: Sendable {
        let topologyKey: String
        let selector: LabelSelector
        let namespaces: [String]

        /// Whether a placed pod is one the term selects.
        func selects(_ placed: PlacedPod) -> Bool { namespaces.contains(placed.namespace) && selector.matches(placed.labels) }
    }

    let json: JSONValue
    let namespace: String
    let labels: [String: String]
    let nodeName: String?
    let request: SchedulingFilters.Usage
    let tolerations: [JSONValue]
    let nodeSelector: [(String, String?)]
    let requiredNodeTerms: [JSONValue]?
    let preferredNodeTerms: [(weight: Int64, term: JSONValue)]
    let antiAffinity: [PodTerm]
    let affinity: [PodTerm]

    init(_ pod: JSONValue) {
        json = pod
        namespace = pod[path: ["metadata", "namespace"]]?.stringValue ?? "default"
        labels = SchedulingFilters.labels(pod)
        nodeName = pod[path: ["spec", "nodeName"]]?.stringValue.flatMap { $0.isEmpty ? nil : $0 }
        request = SchedulingFilters.requests(of: pod)
        tolerations = pod[path: ["spec", "tolerations"]]?.arrayValue ?? []
        nodeSelector = (pod[path: ["spec", "nodeSelector"]]?.objectValue ?? JSONObject()).map { ($0.key, $0.value.stringValue) }
        let affinity = pod[path: ["spec", "affinity"]]
        requiredNodeTerms = affinity?[path: ["nodeAffinity", "requiredDuringSchedulingIgnoredDuringExecution", "nodeSelectorTerms"]]?.arrayValue
        preferredNodeTerms = (affinity?[path: ["nodeAffinity", "preferredDuringSchedulingIgnoredDuringExecution"]]?.arrayValue ?? []).compactMap { preferred in
            preferred["preference"].map { (preferred["weight"]?.int64Value ?? 0, $0) }
        }
        let namespace = namespace
        func terms(_ kind: String) -> [PodTerm] {
            (affinity?[path: [kind, "requiredDuringSchedulingIgnoredDuringExecution"]]?.arrayValue ?? []).compactMap { term in
                guard let key = term["topologyKey"]?.stringValue, let selector = try? LabelSelector(json: term["labelSelector"]) else { return nil }
                return PodTerm(topologyKey: key, selector: selector, namespaces: term["namespaces"]?.arrayValue?.compactMap(\.stringValue) ?? [namespace])
            }
        }
        antiAffinity = terms("podAntiAffinity")
        self.affinity = terms("podAffinity")
    }

    /// Whether the pod's rules look at other pods (then the placed pods are needed).
    var hasPodTerms: Bool { !antiAffinity.isEmpty || !affinity.isEmpty }
}

/// A pod already placed, as inter-pod affinity looks at it.
struct PlacedPod: Sendable {
    let namespace: String
    let labels: [String: String]
    let nodeLabels: [String: String]
}
