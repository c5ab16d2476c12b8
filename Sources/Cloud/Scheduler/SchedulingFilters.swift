import KubeModel

/// kube-scheduler's filters and scores for one pod against the nodes, on plain objects:
/// `spec.nodeName`, unschedulable (cordoned) nodes, `nodeSelector` and required node affinity,
/// taints against tolerations (`NoSchedule`, `NoExecute`), CPU, memory and pod count against
/// allocatable minus what is placed, and required pod affinity and anti-affinity on a topology
/// key; scores prefer the least allocated node (a container without requests counting as 100m
/// and 200 MB) and preferred node affinity. A node that fails says why in kube-scheduler's
/// words, counted into "0/N nodes are available: …".
public struct SchedulingFilters: Sendable {
    /// What the pods on a node already use.
    public struct Usage: Sendable, Equatable {
        public var milliCPU: Int64 = 0
        public var memory: Int64 = 0
        public var pods = 0
        /// CPU and memory for scoring: a container that requests none counts as 100m and
        /// 200 MB, as kube-scheduler's scores count it, so pods without requests spread too.
        public var scoredMilliCPU: Int64 = 0
        public var scoredMemory: Int64 = 0
        public init() {}
    }

    public init() {}

    /// Why `node` cannot take `pod`; `nil` when it can. `placedPods` are the pods placed on
    /// every node (read only for inter-pod affinity).
    func reason(_ pod: SchedulingPod, on node: SchedulingNode, usage: Usage, placedPods: () -> [PlacedPod]) -> String? {
        // kube-scheduler's filter order; a node reports the first that fails.
        if node.unschedulable, !tolerates(pod.tolerations, key: "node.kubernetes.io/unschedulable", value: "", effect: "NoSchedule") {
            return "node(s) were unschedulable"
        }
        if let wanted = pod.nodeName, wanted != node.name { return "node(s) didn't match the requested node name" }
        for taint in node.taints {
            let key = taint["key"]?.stringValue ?? ""
            let value = taint["value"]?.stringValue ?? ""
            guard !tolerates(pod.tolerations, key: key, value: value, effect: taint["effect"]?.stringValue ?? "") else { continue }
            return "node(s) had untolerated taint {\(key): \(value)}"
        }
        if !matchesSelectorAndAffinity(pod, node: node) { return "node(s) didn't match Pod's node affinity/selector" }
        if Int64(usage.pods + 1) > node.maxPods { return "Too many pods" }
        if pod.request.milliCPU > 0, let cpu = node.milliCPU, usage.milliCPU + pod.request.milliCPU > cpu { return "Insufficient cpu" }
        if pod.request.memory > 0, let memory = node.memory, usage.memory + pod.request.memory > memory { return "Insufficient memory" }
        guard pod.hasPodTerms else { return nil }
        let placed = placedPods()
        for term in pod.antiAffinity {
            guard let domain = node.labels[term.topologyKey] else { continue }
            if placed.contains(where: { $0.nodeLabels[term.topologyKey] == domain && term.selects($0) }) {
                return "node(s) didn't match pod anti-affinity rules"
            }
        }
        for term in pod.affinity {
            let domain = node.labels[term.topologyKey]
            if domain != nil, placed.contains(where: { $0.nodeLabels[term.topologyKey] == domain && term.selects($0) }) { continue }
            // The first pod of a group that selects itself may go anywhere with the key.
            let itself = PlacedPod(namespace: pod.namespace, labels: pod.labels, nodeLabels: [:])
            if domain != nil, !placed.contains(where: term.selects), term.selects(itself) { continue }
            return "node(s) didn't match pod affinity rules"
        }
        return nil
    }

    /// A node's score for `pod` (higher is better): free CPU and memory after placing it (0–100
    /// each, counting containers without requests as 100m and 200 MB), plus the weights of the
    /// preferred node-affinity terms it matches.
    func score(_ pod: SchedulingPod, on node: SchedulingNode, usage: Usage) -> Int64 {
        var score: Int64 = 0
        if let cpu = node.milliCPU, cpu > 0 { score += max(0, (cpu - usage.scoredMilliCPU - pod.request.scoredMilliCPU) * 100 / cpu) }
        if let memory = node.memory, memory > 0 { score += max(0, (memory - usage.scoredMemory - pod.request.scoredMemory) * 100 / memory) }
        for preferred in pod.preferredNodeTerms where Self.matches(preferred.term, labels: node.labels, nodeName: node.name) { score += preferred.weight }
        return score
    }

    /// The CPU (milli) and memory a pod requests: its containers' requests summed, or an init
    /// container's when larger (limits stand for requests that are absent).
    public static func requests(of pod: JSONValue) -> Usage {
        func request(_ container: JSONValue, _ resource: String) -> Quantity? {
            (container[path: ["resources", "requests", resource]] ?? container[path: ["resources", "limits", resource]])?.stringValue.flatMap(Quantity.init)
        }
        var usage = Usage()
        for container in pod[path: ["spec", "containers"]]?.arrayValue ?? [] {
            let cpu = request(container, "cpu")?.milliValue
            let memory = request(container, "memory")?.value
            usage.milliCPU += cpu ?? 0
            usage.memory += memory ?? 0
            usage.scoredMilliCPU += cpu ?? 100
            usage.scoredMemory += memory ?? 200 * 1024 * 1024
        }
        for container in pod[path: ["spec", "initContainers"]]?.arrayValue ?? [] {
            usage.milliCPU = max(usage.milliCPU, request(container, "cpu")?.milliValue ?? 0)
            usage.memory = max(usage.memory, request(container, "memory")?.value ?? 0)
        }
        usage.pods = 1
        return usage
    }

    static func labels(_ object: JSONValue) -> [String: String] {
        var labels: [String: String] = [:]
        for (key, value) in object[path: ["metadata", "labels"]]?.objectValue ?? JSONObject() { labels[key] = value.stringValue }
        return labels
    }

    /// `nodeSelector` and required node affinity against the node.
    func matchesSelectorAndAffinity(_ pod: SchedulingPod, node: SchedulingNode) -> Bool {
        for (key, value) in pod.nodeSelector where node.labels[key] != value { return false }
        guard let terms = pod.requiredNodeTerms else { return true }
        // The terms are ORed; each term's expressions ANDed.
        return terms.contains { Self.matches($0, labels: node.labels, nodeName: node.name) }
    }

    /// Whether a NodeSelectorTerm matches the node.
    static func matches(_ term: JSONValue, labels: [String: String], nodeName: String) -> Bool {
        let expressions = term["matchExpressions"]?.arrayValue ?? []
        let fields = term["matchFields"]?.arrayValue ?? []
        guard !expressions.isEmpty || !fields.isEmpty else { return false }
        for expression in expressions where !requirement(expression, value: labels[expression["key"]?.stringValue ?? ""]) { return false }
        for field in fields where field["key"]?.stringValue == "metadata.name" {
            if !requirement(field, value: nodeName) { return false }
        }
        return true
    }

    private static func requirement(_ expression: JSONValue, value: String?) -> Bool {
        let values = expression["values"]?.arrayValue?.compactMap(\.stringValue) ?? []
        switch expression["operator"]?.stringValue {
        case "In": return value.map(values.contains) ?? false
        case "NotIn": return value.map { !values.contains($0) } ?? true
        case "Exists": return value != nil
        case "DoesNotExist": return value == nil
        case "Gt": return value.flatMap { Int64($0) }.map { label in values.first.flatMap { Int64($0) }.map { label > $0 } ?? false } ?? false
        case "Lt": return value.flatMap { Int64($0) }.map { label in values.first.flatMap { Int64($0) }.map { label < $0 } ?? false } ?? false
        default: return false
        }
    }

    /// Whether one of `tolerations` tolerates a taint (key, value and effect).
    func tolerates(_ tolerations: [JSONValue], key: String, value: String, effect: String) -> Bool {
        tolerations.contains { toleration in
            if let wanted = toleration["effect"]?.stringValue, !wanted.isEmpty, wanted != effect { return false }
            let tolerationKey = toleration["key"]?.stringValue ?? ""
            let op = toleration["operator"]?.stringValue ?? "Equal"
            if tolerationKey.isEmpty { return op == "Exists" }
            guard tolerationKey == key else { return false }
            return op == "Exists" || (toleration["value"]?.stringValue ?? "") == value
        }
    }

    /// Whether one of the pod's tolerations tolerates `taint`.
    func tolerates(_ pod: JSONValue, _ taint: JSONValue) -> Bool {
        tolerates(pod[path: ["spec", "tolerations"]]?.arrayValue ?? [], key: taint["key"]?.stringValue ?? "",
                  value: taint["value"]?.stringValue ?? "", effect: taint["effect"]?.stringValue ?? "")
    }
}
