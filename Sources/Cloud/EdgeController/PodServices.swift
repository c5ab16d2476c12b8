import CloudHub
import KubeModel

/// The Services that select a pod: those of its namespace whose non-empty `spec.selector`
/// matches every one of the pod's labels it names (Services without a selector select no pod,
/// as in Kubernetes).
struct PodServices {
    private var byNamespace: [String: [(key: EdgeObjectKey, selector: [String: String], object: JSONValue)]] = [:]

    init(services: [JSONValue]) {
        for service in services {
            guard let key = PodReferences.key(of: service, type: "service"),
                  let selector = service[path: ["spec", "selector"]]?.objectValue, !selector.isEmpty else { continue }
            var labels: [String: String] = [:]
            for (name, value) in selector { labels[name] = value.stringValue ?? "" }
            byNamespace[key.namespace, default: []].append((key, labels, service))
        }
    }

    /// The Services selecting `pod`, by key.
    func selecting(_ pod: JSONValue) -> [(key: EdgeObjectKey, object: JSONValue)] {
        let namespace = pod[path: ["metadata", "namespace"]]?.stringValue.flatMap { $0.isEmpty ? nil : $0 } ?? "default"
        guard let candidates = byNamespace[namespace] else { return [] }
        let labels = pod[path: ["metadata", "labels"]]?.objectValue
        return candidates.filter { candidate in
            candidate.selector.allSatisfy { labels?[$0.key]?.stringValue == $0.value }
        }.map { ($0.key, $0.object) }
    }
}
