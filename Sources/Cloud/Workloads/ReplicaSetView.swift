import Foundation
import KubeModel

/// What the Deployment controller reads of one ReplicaSet.
struct ReplicaSetView: Sendable {
    var object: JSONValue

    var name: String { object[path: ["metadata", "name"]]?.stringValue ?? "" }
    var uid: String { object[path: ["metadata", "uid"]]?.stringValue ?? "" }
    /// `spec.replicas` (1 when absent, as the API defaults it).
    var replicas: Int { Int(object[path: ["spec", "replicas"]]?.int64Value ?? 1) }
    var statusReplicas: Int { Int(object[path: ["status", "replicas"]]?.int64Value ?? 0) }
    var readyReplicas: Int { Int(object[path: ["status", "readyReplicas"]]?.int64Value ?? 0) }
    var availableReplicas: Int { Int(object[path: ["status", "availableReplicas"]]?.int64Value ?? 0) }
    /// The available pods that count toward a rollout: never more than `spec.replicas`, so a
    /// ReplicaSet just scaled down whose status still shows the old number counts no more than
    /// it will keep.
    var countedAvailable: Int { min(availableReplicas, replicas) }
    var creation: String { object[path: ["metadata", "creationTimestamp"]]?.stringValue ?? "" }
    var isBeingDeleted: Bool { object[path: ["metadata", "deletionTimestamp"]] != nil }
    var generation: Int64 { object[path: ["metadata", "generation"]]?.int64Value ?? 1 }
    var observedGeneration: Int64 { object[path: ["status", "observedGeneration"]]?.int64Value ?? 0 }
    var annotations: JSONObject { object[path: ["metadata", "annotations"]]?.objectValue ?? JSONObject() }
    /// `deployment.kubernetes.io/revision`, 0 when absent or not a number.
    var revision: Int { annotations[DeploymentAnnotations.revision]?.stringValue.flatMap { Int($0) } ?? 0 }
    /// `deployment.kubernetes.io/desired-replicas`, if set.
    var desiredReplicas: Int? { annotations[DeploymentAnnotations.desiredReplicas]?.stringValue.flatMap { Int($0) } }
    /// `deployment.kubernetes.io/max-replicas`, if set.
    var maxReplicas: Int? { annotations[DeploymentAnnotations.maxReplicas]?.stringValue.flatMap { Int($0) } }
    var template: JSONValue { object[path: ["spec", "template"]] ?? .null }

    /// Oldest first (kube's `ReplicaSetsByCreationTimestamp`; the name breaks ties).
    static func byCreation(_ left: ReplicaSetView, _ right: ReplicaSetView) -> Bool {
        left.creation == right.creation ? left.name < right.name : left.creation < right.creation
    }
}

/// The annotations the Deployment controller keeps on its ReplicaSets and Deployments.
enum DeploymentAnnotations {
    static let revision = "deployment.kubernetes.io/revision"
    static let revisionHistory = "deployment.kubernetes.io/revision-history"
    static let desiredReplicas = "deployment.kubernetes.io/desired-replicas"
    static let maxReplicas = "deployment.kubernetes.io/max-replicas"
    static let podTemplateHash = "pod-template-hash"

    /// Deployment annotations that are not copied to its ReplicaSets.
    static let notCopied: Set<String> = [
        "kubectl.kubernetes.io/last-applied-configuration", revision, revisionHistory, desiredReplicas, maxReplicas,
        "deprecated.deployment.rollback.to",
    ]
}
