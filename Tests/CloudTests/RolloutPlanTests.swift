@testable import Cloud
import KubeModel
import Testing

/// The rollout arithmetic against kube's documented behaviour, case by case.
struct RolloutPlanTests {
    private func replicaSet(_ uid: String, replicas: Int, available: Int, created: String, maxReplicas: Int? = nil) -> ReplicaSetView {
        var annotations = JSONObject()
        if let maxReplicas { annotations[DeploymentAnnotations.maxReplicas] = .string(String(maxReplicas)) }
        return ReplicaSetView(object: .object(JSONObject([
            ("metadata", .object(JSONObject([("name", .string(uid)), ("uid", .string(uid)), ("creationTimestamp", .string(created)),
                                             ("annotations", .object(annotations))]))),
            ("spec", .object(JSONObject([("replicas", .integer(replicas))]))),
            ("status", .object(JSONObject([("replicas", .integer(replicas)), ("availableReplicas", .integer(available))]))),
        ])))
    }

    private func deployment(replicas: Int, surge: JSONValue?, unavailable: JSONValue?, type: String = "RollingUpdate") -> JSONValue {
        var rolling = JSONObject()
        if let surge { rolling["maxSurge"] = surge }
        if let unavailable { rolling["maxUnavailable"] = unavailable }
        return .object(JSONObject([("spec", .object(JSONObject([
            ("replicas", .integer(replicas)),
            ("strategy", .object(JSONObject([("type", .string(type)), ("rollingUpdate", .object(rolling))]))),
        ])))]))
    }

    @Test("percentages: a surge rounds up, unavailability down; both zero means one may be unavailable")
    func fenceposts() {
        #expect(RolloutPlan.fenceposts(of: deployment(replicas: 3, surge: .string("25%"), unavailable: .string("25%"))) == (1, 0))
        #expect(RolloutPlan.fenceposts(of: deployment(replicas: 10, surge: .string("25%"), unavailable: .string("25%"))) == (3, 2))
        #expect(RolloutPlan.fenceposts(of: deployment(replicas: 4, surge: .integer(0), unavailable: .integer(0))) == (0, 1))
        #expect(RolloutPlan.fenceposts(of: deployment(replicas: 4, surge: .integer(2), unavailable: .string("50%"))) == (2, 2))
        #expect(RolloutPlan.fenceposts(of: deployment(replicas: 4, surge: nil, unavailable: nil, type: "Recreate")) == (0, 0))
    }

    @Test("the new ReplicaSet grows up to replicas + surge pods in all, never past replicas")
    func newReplicaSetGrowth() {
        #expect(RolloutPlan.newReplicaSetReplicas(desired: 3, surge: 1, newReplicas: 0, allReplicas: 3) == 1)
        #expect(RolloutPlan.newReplicaSetReplicas(desired: 3, surge: 1, newReplicas: 1, allReplicas: 4) == 1)
        #expect(RolloutPlan.newReplicaSetReplicas(desired: 10, surge: 3, newReplicas: 0, allReplicas: 10) == 3)
        #expect(RolloutPlan.newReplicaSetReplicas(desired: 3, surge: 5, newReplicas: 1, allReplicas: 3) == 3)
    }

    @Test("old ReplicaSets lose unavailable pods first, then available ones down to replicas - maxUnavailable")
    func oldScaleDown() {
        let new = replicaSet("new", replicas: 1, available: 1, created: "2")
        let old = replicaSet("old", replicas: 3, available: 3, created: "1")
        // 3 wanted, none may be unavailable: 4 available, so one old pod goes.
        #expect(RolloutPlan.oldScaleDown(desired: 3, unavailable: 0, new: new, old: [old]) == ["old": 2])
        // The new pod is not available yet: nothing may go.
        let starting = replicaSet("new", replicas: 1, available: 0, created: "2")
        #expect(RolloutPlan.oldScaleDown(desired: 3, unavailable: 0, new: starting, old: [old]) == [:])
        // Unavailable old pods go first, even when none of the others may.
        let broken = replicaSet("broken", replicas: 2, available: 0, created: "0")
        #expect(RolloutPlan.oldScaleDown(desired: 3, unavailable: 0, new: starting, old: [broken, old]) == ["broken": 0])
        // A status that still shows more available pods than spec.replicas counts no more than it keeps.
        let shrunk = replicaSet("old", replicas: 2, available: 3, created: "1")
        #expect(RolloutPlan.oldScaleDown(desired: 3, unavailable: 0, new: new, old: [shrunk]) == [:])
    }

    @Test("a resize mid-rollout is shared in proportion; one active ReplicaSet takes it all")
    func proportionalResize() {
        // 10 replicas, surge 3: new 6 and old 7 (13 = 10 + 3). Resized to 20 (surge 5): 25 in all.
        let new = replicaSet("new", replicas: 6, available: 6, created: "2", maxReplicas: 13)
        let old = replicaSet("old", replicas: 7, available: 7, created: "1", maxReplicas: 13)
        let sizes = RolloutPlan.proportionalSizes(desired: 20, surge: 5, active: [new, old], previousTotal: 13)
        #expect(sizes.values.reduce(0, +) == 25, "\(sizes)")
        #expect(sizes["old"]! > sizes["new"]!, "\(sizes)")
        // Scaled to 0: all go.
        #expect(RolloutPlan.proportionalSizes(desired: 0, surge: 0, active: [new, old], previousTotal: 13) == ["new": 0, "old": 0])
        let only = replicaSet("only", replicas: 3, available: 3, created: "1")
        let idle = replicaSet("idle", replicas: 0, available: 0, created: "0")
        #expect(RolloutPlan.activeOrLatest(new: nil, old: [idle, only])?.uid == "only")
        #expect(RolloutPlan.activeOrLatest(new: nil, old: [idle])?.uid == "idle")
        #expect(RolloutPlan.activeOrLatest(new: new, old: [old]) == nil)
    }

    @Test("the pod template hash is stable, ignores key order, and changes with the template and the collision count")
    func templateHash() throws {
        let template = try JSONValue(parsing: #"{"metadata":{"labels":{"app":"web"}},"spec":{"containers":[{"name":"c","image":"busybox"}]}}"#)
        let reordered = try JSONValue(parsing: #"{"spec":{"containers":[{"image":"busybox","name":"c"}]},"metadata":{"labels":{"app":"web"}}}"#)
        let changed = try JSONValue(parsing: #"{"metadata":{"labels":{"app":"web"}},"spec":{"containers":[{"name":"c","image":"nginx"}]}}"#)
        let hash = PodTemplateHash.of(template, collisionCount: nil)
        #expect(hash == PodTemplateHash.of(reordered, collisionCount: nil))
        #expect(hash != PodTemplateHash.of(changed, collisionCount: nil))
        #expect(hash != PodTemplateHash.of(template, collisionCount: 1))
        #expect(hash.allSatisfy { "bcdfghjklmnpqrstvwxz2456789".contains($0) } && (1...10).contains(hash.count), "\(hash)")
        var labelled = template
        labelled.set(.string(hash), at: ["metadata", "labels", "pod-template-hash"])
        #expect(PodTemplateHash.equalIgnoringHash(labelled, reordered))
        #expect(!PodTemplateHash.equalIgnoringHash(labelled, changed))
    }
}

/// The labels an edge may give itself at registration (kubelet's --node-labels rules).
struct NodeLabelRuleTests {
    @Test("kubelet's own kubernetes.io labels and node.kubernetes.io pass; roles and other kubernetes.io keys do not; the user's pass")
    func rules() {
        for allowed in ["site", "example.com/rack", "kubernetes.io/hostname", "topology.kubernetes.io/zone", "node.kubernetes.io/instance-type",
                        "node.kubernetes.io/custom", "kubelet.kubernetes.io/x", "sub.node.kubernetes.io/y"] {
            #expect(NodeLabels.mayBeSetByNode(allowed), "\(allowed)")
        }
        for refused in ["node-role.kubernetes.io/master", "node-role.kubernetes.io/edge", "kubernetes.io/role", "foo.k8s.io/bar", "k8s.io/x"] {
            #expect(!NodeLabels.mayBeSetByNode(refused), "\(refused)")
        }
    }
}
