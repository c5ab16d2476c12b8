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

    /// Why `node` cannot take `pod`; `nil` when it can. `placed` are the pods bound to the node,
    /// `everywhere` the bound pods of every node (for anti-affinity) with their node's labels.
    public func reason(_ pod: JSONValue, on node: JSONValue, usage: Usage, placedPods: [(pod: JSONValue, nodeLabels: [String: String])]) -> String? {
        let labels = Self.labels(node)
        // kube-scheduler's filter order; a node reports the first that fails.
        if node[path: ["spec", "unschedulable"]]?.boolValue == true,
           !tolerates(pod, JSONValue.object(JSONObject([("key", .string("node.kubernetes.io/unschedulable")), ("effect", .string("NoSchedule"))]))) {
            return "node(s) were unschedulable"
        }
        if let wanted = pod[path: ["spec", "nodeName"]]?.stringValue, !wanted.isEmpty, wanted != node[path: ["metadata", "name"]]?.stringValue {
            return "node(s) didn't match the requested node name"
        }
        for taint in node[path: ["spec", "taints"]]?.arrayValue ?? [] {
            let effect = taint["effect"]?.stringValue ?? ""
            guard effect == "NoSchedule" || effect == "NoExecute", !tolerates(pod, taint) else { continue }
            return "node(s) had untolerated taint {\(taint["key"]?.stringValue ?? ""): \(taint["value"]?.stringValue ?? "")}"
        }
        if !matchesSelectorAndAffinity(pod, labels: labels, node: node) { return "node(s) didn't match Pod's node affinity/selector" }
        let allocatable = node[path: ["status", "allocatable"]]
        let request = Self.requests(of: pod)
        let maxPods = allocatable?["pods"]?.stringValue.flatMap(Quantity.init)?.value ?? 110
        if Int64(usage.pods + 1) > maxPods { return "Too many pods" }
        if request.milliCPU > 0, let cpu = allocatable?["cpu"]?.stringValue.flatMap(Quantity.init), usage.milliCPU + request.milliCPU > cpu.milliValue {
            return "Insufficient cpu"
        }
        if request.memory > 0, let memory = allocatable?["memory"]?.stringValue.flatMap(Quantity.init), usage.memory + request.memory > memory.value {
            return "Insufficient memory"
        }
        for term in pod[path: ["spec", "affinity", "podAntiAffinity", "requiredDuringSchedulingIgnoredDuringExecution"]]?.arrayValue ?? [] {
            guard let key = term["topologyKey"]?.stringValue, let domain = labels[key],
                  let selector = try? LabelSelector(json: term["labelSelector"]) else { continue }
            let namespace = pod[path: ["metadata", "namespace"]]?.stringValue ?? "default"
            let namespaces = term["namespaces"]?.arrayValue?.compactMap(\.stringValue) ?? [namespace]
            if placedPods.contains(where: { placed in
                placed.nodeLabels[key] == domain && namespaces.contains(placed.pod[path: ["metadata", "namespace"]]?.stringValue ?? "default")
                    && selector.matches(Self.labels(placed.pod))
            }) {
                return "node(s) didn't match pod anti-affinity rules"
            }
        }
        for term in pod[path: ["spec", "affinity", "podAffinity", "requiredDuringSchedulingIgnoredDuringExecution"]]?.arrayValue ?? [] {
            guard let key = term["topologyKey"]?.stringValue, let selector = try? LabelSelector(json: term["labelSelector"]) else { continue }
            let namespace = pod[path: ["metadata", "namespace"]]?.stringValue ?? "default"
            let namespaces = term["namespaces"]?.arrayValue?.compactMap(\.stringValue) ?? [namespace]
            func matching(_ placed: (pod: JSONValue, nodeLabels: [String: String])) -> Bool {
                namespaces.contains(placed.pod[path: ["metadata", "namespace"]]?.stringValue ?? "default") && selector.matches(Self.labels(placed.pod))
            }
            let domain = labels[key]
            if domain != nil, placedPods.contains(where: { $0.nodeLabels[key] == domain && matching($0) }) { continue }
            // The first pod of a group that selects itself may go anywhere with the key.
            if domain != nil, !placedPods.contains(where: matching), namespaces.contains(namespace), selector.matches(Self.labels(pod)) { continue }
            return "node(s) didn't match pod affinity rules"
        }
        return nil
    }

    /// A node's score for `pod` (higher is better): free CPU and memory after placing it (0–100
    /// each), plus the weights of the preferred node-affinity terms it matches.
    public func score(_ pod: JSONValue, on node: JSONValue, usage: Usage) -> Int64 {
        let allocatable = node[path: ["status", "allocatable"]]
        let request = Self.requests(of: pod)
        var score: Int64 = 0
        if let cpu = allocatable?["cpu"]?.stringValue.flatMap(Quantity.init)?.milliValue, cpu > 0 {
            score += max(0, (cpu - usage.scoredMilliCPU - request.scoredMilliCPU) * 100 / cpu)
        }
        if let memory = allocatable?["memory"]?.stringValue.flatMap(Quantity.init)?.value, memory > 0 {
            score += max(0, (memory - usage.scoredMemory - request.scoredMemory) * 100 / memory)
        }
        let labels = Self.labels(node)
        for preferred in pod[path: ["spec", "affinity", "nodeAffinity", "preferredDuringSchedulingIgnoredDuringExecution"]]?.arrayValue ?? [] {
            if let term = preferred["preference"], Self.matches(term, labels: labels, node: node) { score += preferred["weight"]?.int64Value ?? 0 }
        }
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

    func matchesSelectorAndAffinity(_ pod: JSONValue, labels: [String: String], node: JSONValue) -> Bool {
        for (key, value) in pod[path: ["spec", "nodeSelector"]]?.objectValue ?? JSONObject() where labels[key] != value.stringValue { return false }
        guard let terms = pod[path: ["spec", "affinity", "nodeAffinity", "requiredDuringSchedulingIgnoredDuringExecution", "nodeSelectorTerms"]]?.arrayValue else {
            return true
        }
        // The terms are ORed; each term's expressions ANDed.
        return terms.contains { Self.matches($0, labels: labels, node: node) }
    }

    /// Whether a NodeSelectorTerm matches the node.
    static func matches(_ term: JSONValue, labels: [String: String], node: JSONValue) -> Bool {
        let expressions = term["matchExpressions"]?.arrayValue ?? []
        let fields = term["matchFields"]?.arrayValue ?? []
        guard !expressions.isEmpty || !fields.isEmpty else { return false }
        for expression in expressions where !requirement(expression, value: labels[expression["key"]?.stringValue ?? ""]) { return false }
        for field in fields where field["key"]?.stringValue == "metadata.name" {
            if !requirement(field, value: node[path: ["metadata", "name"]]?.stringValue) { return false }
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

    /// Whether one of the pod's tolerations tolerates `taint` (key, value and effect).
    func tolerates(_ pod: JSONValue, _ taint: JSONValue) -> Bool {
        let key = taint["key"]?.stringValue ?? ""
        let value = taint["value"]?.stringValue ?? ""
        let effect = taint["effect"]?.stringValue ?? ""
        return (pod[path: ["spec", "tolerations"]]?.arrayValue ?? []).contains { toleration in
            if let wanted = toleration["effect"]?.stringValue, !wanted.isEmpty, wanted != effect { return false }
            let tolerationKey = toleration["key"]?.stringValue ?? ""
            let op = toleration["operator"]?.stringValue ?? "Equal"
            if tolerationKey.isEmpty { return op == "Exists" }
            guard tolerationKey == key else { return false }
            return op == "Exists" || (toleration["value"]?.stringValue ?? "") == value
        }
    }
}
