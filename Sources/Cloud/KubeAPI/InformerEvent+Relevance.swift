import KubeModel

/// Which changes call for a controller's pass. Every controller looks at the whole cache when
/// it runs, so a change it does not care about (an edge reporting a pod Ready, to the Job
/// controller; a node's heartbeat, to the scheduler) would only cost a pass over every object:
/// with a thousand pods reporting at once, those passes took the CPU the work itself needed.
extension Informer.Event {
    /// The object as it is now (or was, when deleted), and before the change when updated.
    var objects: (old: JSONValue?, new: JSONValue) {
        switch self {
        case .added(let object): (nil, object)
        case .updated(let old, let new): (old, new)
        case .deleted(let object): (nil, object)
        }
    }

    /// Whether the object, before or after, has a controlling owner of `kind`.
    func isControlled(by kind: String) -> Bool {
        let (old, new) = objects
        return Self.controllerKind(of: new) == kind || old.map { Self.controllerKind(of: $0) == kind } == true
    }

    /// Whether anything but the status (and the version and managed fields that move with it)
    /// changed: what an edge is sent of an object leaves the status out.
    var changesMoreThanStatus: Bool {
        guard case .updated(let old, let new) = self else { return true }
        return old["spec"] != new["spec"] || Self.trimmedMetadata(old) != Self.trimmedMetadata(new)
            || Self.withoutSpecStatusMetadata(old) != Self.withoutSpecStatusMetadata(new)
    }

    /// Whether a node changed in a way that can change where pods go: it came or went, or its
    /// labels, spec (taints, unschedulable) or allocatable resources changed. Heartbeats do not.
    var changesNodePlacement: Bool {
        guard case .updated(let old, let new) = self else { return true }
        return old[path: ["metadata", "labels"]] != new[path: ["metadata", "labels"]] || old["spec"] != new["spec"]
            || old[path: ["status", "allocatable"]] != new[path: ["status", "allocatable"]]
    }

    /// Whether a pod changed in a way the scheduler sees: it came or went, is not bound yet,
    /// was bound, finished, is being deleted, or its labels changed (inter-pod affinity).
    var changesPodPlacement: Bool {
        guard case .updated(let old, let new) = self else { return true }
        let node = new[path: ["spec", "nodeName"]]?.stringValue ?? ""
        return node.isEmpty || old[path: ["spec", "nodeName"]] != new[path: ["spec", "nodeName"]]
            || old[path: ["status", "phase"]] != new[path: ["status", "phase"]]
            || old[path: ["metadata", "deletionTimestamp"]] != new[path: ["metadata", "deletionTimestamp"]]
            || old[path: ["metadata", "labels"]] != new[path: ["metadata", "labels"]]
    }

    /// Whether the object came, went, or changed phase (a pod finishing).
    var changesPhaseOrExistence: Bool {
        guard case .updated(let old, let new) = self else { return true }
        return old[path: ["status", "phase"]] != new[path: ["status", "phase"]]
    }

    private static func controllerKind(of object: JSONValue) -> String? {
        object[path: ["metadata", "ownerReferences"]]?.arrayValue?.first { $0["controller"]?.boolValue == true }?["kind"]?.stringValue
    }

    private static func trimmedMetadata(_ object: JSONValue) -> JSONValue? {
        guard var metadata = object["metadata"] else { return nil }
        metadata.set(nil, at: ["resourceVersion"])
        metadata.set(nil, at: ["managedFields"])
        return metadata
    }

    /// The object's other top-level fields (`data` of a ConfigMap, `subsets` of Endpoints…).
    private static func withoutSpecStatusMetadata(_ object: JSONValue) -> JSONValue {
        var rest = object
        for field in ["spec", "status", "metadata"] { rest.set(nil, at: [field]) }
        return rest
    }
}
