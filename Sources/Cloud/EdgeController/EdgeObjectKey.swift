// Only CloudHub is imported here: KubeModel has an ObjectReference of its own (Kubernetes').
import CloudHub

/// An object the EdgeController delivers to edge nodes: CloudHub's reference (kind, namespace,
/// name), the same one its access policy grants nodes.
public typealias EdgeObjectKey = ObjectReference

extension EdgeObjectKey {
    /// The object as KubeEdge's resources name it, and the edge's MetaManager stores it:
    /// `{namespace}/{type}/{name}`.
    public var resource: String { "\(namespace)/\(kind)/\(name)" }
}
