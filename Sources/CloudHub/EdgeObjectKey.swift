/// A cluster object as KubeEdge's resource strings name it, `{namespace}/{type}/{name}`: what the
/// cloud delivers to edge nodes, and what CloudHub's access policy lets a node send about once
/// it holds it (``CloudHub/grant(_:to:)``).
///
/// Not Kubernetes' `ObjectReference` (KubeModel's, an Event's `involvedObject`): that one carries
/// `apiVersion`, the kind as Kubernetes writes it (`Pod`) and optional fields as the JSON has
/// them; this one is a key, with KubeEdge's lower-case type and the namespace always present,
/// so that equal objects compare equal whoever built the key.
public struct EdgeObjectKey: Hashable, Sendable, CustomStringConvertible {
    /// The object's type in lower case as KubeEdge's resource strings write it: `pod`, `device`, …
    public var kind: String
    /// The namespace; empty or `null` for cluster-scoped objects.
    public var namespace: String
    public var name: String

    /// Creates a key.
    public init(kind: String, namespace: String, name: String) {
        self.kind = kind
        self.namespace = namespace
        self.name = name
    }

    /// The object as KubeEdge's resources name it, and the edge's MetaManager stores it:
    /// `{namespace}/{type}/{name}`.
    public var resource: String { "\(namespace)/\(kind)/\(name)" }

    public var description: String { "\(kind) \(namespace)/\(name)" }
}
