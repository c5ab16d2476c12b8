import Foundation
import KubeModel

extension DeploymentController {
    private var replicaSetResource: APIResource { ReplicaSetController.replicaSetResource }

    /// Creates the ReplicaSet of the Deployment's current template with `replicas` pods, or
    /// takes the one of that name when it exists with the same template; on a name taken by a
    /// different template, raises `status.collisionCount` so the next pass hashes differently.
    func createNewReplicaSet(_ deployment: JSONValue, old: [ReplicaSetView], replicas: Int) async -> ReplicaSetView? {
        let name = deployment[path: ["metadata", "name"]]?.stringValue ?? ""
        let namespace = deployment[path: ["metadata", "namespace"]]?.stringValue ?? "default"
        let collisionCount = deployment[path: ["status", "collisionCount"]]?.int64Value
        let template = deployment[path: ["spec", "template"]] ?? .null
        let hash = PodTemplateHash.of(template, collisionCount: collisionCount)
        var podTemplate = template
        podTemplate.set(.string(hash), at: ["metadata", "labels", DeploymentAnnotations.podTemplateHash])
        var selector = deployment[path: ["spec", "selector"]] ?? .object(JSONObject())
        selector.set(.string(hash), at: ["matchLabels", DeploymentAnnotations.podTemplateHash])
        let (surge, _) = RolloutPlan.fenceposts(of: deployment)
        let desired = RolloutPlan.desiredReplicas(of: deployment)
        var annotations = Self.copiedAnnotations(of: deployment)
        annotations[DeploymentAnnotations.revision] = .string(String((old.map(\.revision).max() ?? 0) + 1))
        annotations[DeploymentAnnotations.desiredReplicas] = .string(String(desired))
        annotations[DeploymentAnnotations.maxReplicas] = .string(String(desired + surge))
        var spec = JSONObject([("replicas", .integer(replicas)), ("selector", selector), ("template", podTemplate)])
        if let minReady = deployment[path: ["spec", "minReadySeconds"]] { spec["minReadySeconds"] = minReady }
        let replicaSet = JSONValue.object(JSONObject([
            ("apiVersion", .string("apps/v1")), ("kind", .string("ReplicaSet")),
            ("metadata", .object(JSONObject([
                ("name", .string(name + "-" + hash)), ("namespace", .string(namespace)),
                ("labels", podTemplate[path: ["metadata", "labels"]] ?? .object(JSONObject())),
                ("annotations", .object(annotations)),
                ("ownerReferences", .array([Self.ownerReference(to: deployment)])),
            ]))),
            ("spec", .object(spec)),
        ]))
        do {
            let created = ReplicaSetView(object: try await client.create(replicaSetResource, namespace: namespace, replicaSet))
            remember(created.object)
            count { $0.replicaSetsCreated += 1 }
            if replicas > 0 { await recordScaling(deployment, created.name, from: 0, to: replicas) }
            await setRevision(of: deployment, to: created.revision)
            return created
        } catch let error as APIError where error.code == 409 {
            if let existing = try? await client.get(replicaSetResource, namespace: namespace, name: name + "-" + hash),
               Self.controllerUID(of: existing, kind: "Deployment") == deployment[path: ["metadata", "uid"]]?.stringValue,
               PodTemplateHash.equalIgnoringHash(existing[path: ["spec", "template"]] ?? .null, template) {
                remember(existing)
                return ReplicaSetView(object: existing)
            }
            await patchStatus(deployment, .object(JSONObject([("collisionCount", .integer(Int((collisionCount ?? 0) + 1)))])))
            logger.info("pod template hash collision", metadata: ["deployment": "\(namespace)/\(name)", "hash": "\(hash)"])
            return nil
        } catch {
            count { $0.failures += 1 }
            logger.warning("cannot create a replica set", metadata: ["deployment": "\(namespace)/\(name)", "error": "\(error)"])
            return nil
        }
    }

    /// Brings the new ReplicaSet's revision, copied annotations and `minReadySeconds` up to
    /// date (an earlier template that is current again gets the next revision), and the
    /// Deployment's revision annotation to the new ReplicaSet's.
    func syncRevision(_ new: ReplicaSetView, old: [ReplicaSetView], deployment: JSONValue) async -> ReplicaSetView {
        var annotations = JSONObject()
        let next = (old.map(\.revision).max() ?? 0) + 1
        if new.revision < next {
            annotations[DeploymentAnnotations.revision] = .string(String(next))
            if new.revision > 0 {
                let history = new.annotations[DeploymentAnnotations.revisionHistory]?.stringValue
                annotations[DeploymentAnnotations.revisionHistory] = .string(history.map { "\($0),\(new.revision)" } ?? String(new.revision))
            }
        }
        for (key, value) in Self.copiedAnnotations(of: deployment) where new.annotations[key] != value { annotations[key] = value }
        var patch = JSONObject()
        if !annotations.isEmpty { patch["metadata"] = .object(JSONObject([("annotations", .object(annotations))])) }
        let minReady = deployment[path: ["spec", "minReadySeconds"]] ?? .integer(0)
        if (new.object[path: ["spec", "minReadySeconds"]] ?? .integer(0)) != minReady {
            patch["spec"] = .object(JSONObject([("minReadySeconds", minReady)]))
        }
        var current = new
        if !patch.isEmpty, let patched = await patchReplicaSet(new, .object(patch)) { current = patched }
        await setRevision(of: deployment, to: current.revision)
        return current
    }

    /// Sets `replicaSet`'s size and its desired/max annotations; whether anything changed.
    @discardableResult
    func scale(_ replicaSet: ReplicaSetView, to size: Int, deployment: JSONValue, surge: Int) async -> Bool {
        let desired = RolloutPlan.desiredReplicas(of: deployment)
        let annotationsCurrent = replicaSet.desiredReplicas == desired && replicaSet.maxReplicas == desired + surge
        guard size != replicaSet.replicas || !annotationsCurrent else { return false }
        let patch = JSONValue.object(JSONObject([
            ("metadata", .object(JSONObject([("annotations", .object(JSONObject([
                (DeploymentAnnotations.desiredReplicas, .string(String(desired))),
                (DeploymentAnnotations.maxReplicas, .string(String(desired + surge))),
            ])))]))),
            ("spec", .object(JSONObject([("replicas", .integer(max(0, size)))]))),
        ]))
        guard await patchReplicaSet(replicaSet, patch) != nil else { return false }
        if size != replicaSet.replicas {
            count { $0.replicaSetsScaled += 1 }
            await recordScaling(deployment, replicaSet.name, from: replicaSet.replicas, to: size)
        }
        return true
    }

    /// Deletes old ReplicaSets with no pods beyond `revisionHistoryLimit`, lowest revision first.
    func cleanUpHistory(_ deployment: JSONValue, old: [ReplicaSetView]) async {
        guard let limit = deployment[path: ["spec", "revisionHistoryLimit"]]?.int64Value else { return }
        let alive = old.filter { !$0.isBeingDeleted }
        var surplus = alive.count - Int(limit)
        guard surplus > 0 else { return }
        let ordered = alive.sorted { $0.revision == $1.revision ? ReplicaSetView.byCreation($0, $1) : $0.revision < $1.revision }
        for replicaSet in ordered where surplus > 0 {
            guard replicaSet.replicas == 0, replicaSet.statusReplicas == 0, replicaSet.generation <= replicaSet.observedGeneration else { continue }
            let namespace = replicaSet.object[path: ["metadata", "namespace"]]?.stringValue ?? "default"
            do {
                try await client.delete(replicaSetResource, namespace: namespace, name: replicaSet.name)
                forget(uid: replicaSet.uid)
                count { $0.replicaSetsDeleted += 1 }
            } catch let error as APIError where error.code == 404 {
            } catch {
                count { $0.failures += 1 }
            }
            surplus -= 1
        }
    }

    private func patchReplicaSet(_ replicaSet: ReplicaSetView, _ patch: JSONValue) async -> ReplicaSetView? {
        let namespace = replicaSet.object[path: ["metadata", "namespace"]]?.stringValue ?? "default"
        do {
            let patched = try await client.patch(replicaSetResource, namespace: namespace, name: replicaSet.name, patch)
            remember(patched)
            return ReplicaSetView(object: patched)
        } catch {
            count { $0.failures += 1 }
            logger.warning("cannot update a replica set", metadata: ["replicaset": "\(namespace)/\(replicaSet.name)", "error": "\(error)"])
            return nil
        }
    }

    /// The Deployment's `deployment.kubernetes.io/revision`, as its new ReplicaSet's.
    private func setRevision(of deployment: JSONValue, to revision: Int) async {
        guard revision > 0, deployment[path: ["metadata", "annotations", DeploymentAnnotations.revision]]?.stringValue != String(revision) else { return }
        let namespace = deployment[path: ["metadata", "namespace"]]?.stringValue ?? "default"
        let name = deployment[path: ["metadata", "name"]]?.stringValue ?? ""
        let patch = JSONValue.object(JSONObject([("metadata", .object(JSONObject([
            ("annotations", .object(JSONObject([(DeploymentAnnotations.revision, .string(String(revision)))]))),
        ])))]))
        do {
            remember(try await client.patch(Self.deploymentResource, namespace: namespace, name: name, patch))
        } catch {
            count { $0.failures += 1 }
        }
    }

    func patchStatus(_ deployment: JSONValue, _ status: JSONValue) async {
        let namespace = deployment[path: ["metadata", "namespace"]]?.stringValue ?? "default"
        let name = deployment[path: ["metadata", "name"]]?.stringValue ?? ""
        do {
            remember(try await client.patch(Self.deploymentResource, namespace: namespace, name: name,
                                            .object(JSONObject([("status", status)])), status: true))
        } catch let error as APIError where error.code == 404 {
        } catch {
            count { $0.failures += 1 }
            logger.warning("cannot write a deployment's status", metadata: ["deployment": "\(namespace)/\(name)", "error": "\(error)"])
        }
    }

    private func recordScaling(_ deployment: JSONValue, _ replicaSet: String, from: Int, to: Int) async {
        let direction = to > from ? "up" : "down"
        try? await events.record(Self.reference(to: deployment), type: "Normal", reason: "ScalingReplicaSet",
                                 message: "Scaled \(direction) replica set \(replicaSet) from \(from) to \(to)")
    }

    /// The Deployment's annotations that its ReplicaSets carry too.
    static func copiedAnnotations(of deployment: JSONValue) -> JSONObject {
        var copied = JSONObject()
        for (key, value) in deployment[path: ["metadata", "annotations"]]?.objectValue ?? JSONObject()
        where !DeploymentAnnotations.notCopied.contains(key) {
            copied[key] = value
        }
        return copied
    }

    static func ownerReference(to deployment: JSONValue) -> JSONValue {
        .object(JSONObject([
            ("apiVersion", .string("apps/v1")), ("kind", .string("Deployment")),
            ("name", deployment[path: ["metadata", "name"]] ?? .null), ("uid", deployment[path: ["metadata", "uid"]] ?? .null),
            ("controller", .bool(true)), ("blockOwnerDeletion", .bool(true)),
        ]))
    }

    static func reference(to deployment: JSONValue) -> JSONValue {
        .object(JSONObject([
            ("apiVersion", .string("apps/v1")), ("kind", .string("Deployment")),
            ("name", deployment[path: ["metadata", "name"]] ?? .null), ("namespace", deployment[path: ["metadata", "namespace"]] ?? .null),
            ("uid", deployment[path: ["metadata", "uid"]] ?? .null),
            ("resourceVersion", deployment[path: ["metadata", "resourceVersion"]] ?? .null),
        ]))
    }
}
