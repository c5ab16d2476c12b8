import KubeModel

/// Nodes and placed pods as the scheduler reads them, parsed once per resourceVersion instead of
/// once per pass: quantities and labels of a thousand pods took most of a pass otherwise.
/// A pass starts from ``snapshot``, parses through it, and stores what it used back with
/// ``keep(_:)`` (so objects gone from the caches are forgotten).
struct SchedulingCache: Sendable {
    /// What placing a pod on a node counts: its namespace and labels (inter-pod affinity), and
    /// what it requests.
    struct PlacedFacts: Sendable {
        let namespace: String
        let labels: [String: String]
        let request: SchedulingFilters.Usage
    }

    private var nodes: [String: (version: String, node: SchedulingNode)] = [:]
    private var pods: [String: (version: String, facts: PlacedFacts)] = [:]
    private var usedNodes: [String: (version: String, node: SchedulingNode)] = [:]
    private var usedPods: [String: (version: String, facts: PlacedFacts)] = [:]

    /// The node, parsed (again only if its version changed).
    mutating func node(_ object: JSONValue) -> SchedulingNode {
        let name = object[path: ["metadata", "name"]]?.stringValue ?? ""
        let version = object[path: ["metadata", "resourceVersion"]]?.stringValue ?? ""
        if let known = usedNodes[name] ?? nodes[name], known.version == version, !version.isEmpty {
            usedNodes[name] = known
            return known.node
        }
        let node = SchedulingNode(object)
        usedNodes[name] = (version, node)
        return node
    }

    /// The pod's facts, parsed (again only if its version changed).
    mutating func facts(_ pod: JSONValue) -> PlacedFacts {
        let uid = pod[path: ["metadata", "uid"]]?.stringValue ?? ""
        let version = pod[path: ["metadata", "resourceVersion"]]?.stringValue ?? ""
        if let known = usedPods[uid] ?? pods[uid], known.version == version, !version.isEmpty {
            usedPods[uid] = known
            return known.facts
        }
        let facts = PlacedFacts(namespace: pod[path: ["metadata", "namespace"]]?.stringValue ?? "default",
                                labels: SchedulingFilters.labels(pod), request: SchedulingFilters.requests(of: pod))
        usedPods[uid] = (version, facts)
        return facts
    }

    /// What the pass used, to start the next one from.
    var kept: SchedulingCache {
        var next = SchedulingCache()
        next.nodes = usedNodes
        next.pods = usedPods
        return next
    }
}
