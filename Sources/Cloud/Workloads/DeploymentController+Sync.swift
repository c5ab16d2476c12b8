import Foundation
import KubeModel

extension DeploymentController {
    /// What one pass did that the status reports.
    struct PassOutcome {
        /// The new ReplicaSet was created in this pass.
        var created: String?
    }

    /// One Deployment: pause and resize, then a step of its strategy, then its status.
    func sync(_ deployment: JSONValue, owned: [ReplicaSetView], pods: [String: [JSONValue]]) async -> Duration? {
        let desired = RolloutPlan.desiredReplicas(of: deployment)
        let (surge, _) = RolloutPlan.fenceposts(of: deployment)
        var (new, old) = split(owned, for: deployment)
        var outcome = PassOutcome()
        let paused = deployment[path: ["spec", "paused"]]?.boolValue == true
        let scaling = ((new.map { [$0] } ?? []) + old).contains { $0.replicas > 0 && $0.desiredReplicas.map { $0 != desired } == true }
        if paused || scaling {
            if let current = new { new = await syncRevision(current, old: old, deployment: deployment) }
            await resize(deployment, new: new, old: old, surge: surge)
            if paused { await cleanUpHistory(deployment, old: old) }
            return await writeStatus(deployment, new: new, old: old, outcome: outcome, rolloutStep: !paused)
        }
        if deployment[path: ["spec", "strategy", "type"]]?.stringValue == "Recreate" {
            return await recreate(deployment, new: new, old: old, pods: pods)
        }
        guard let current = new else {
            let size = RolloutPlan.newReplicaSetReplicas(desired: desired, surge: surge, newReplicas: 0, allReplicas: old.reduce(0) { $0 + $1.replicas })
            outcome.created = await createNewReplicaSet(deployment, old: old, replicas: size)?.name
            return await writeStatus(deployment, new: nil, old: old, outcome: outcome, rolloutStep: true)
        }
        new = await syncRevision(current, old: old, deployment: deployment)
        if await rollingStep(deployment, new: new!, old: old) {
            return await writeStatus(deployment, new: new, old: old, outcome: outcome, rolloutStep: true)
        }
        if Self.isComplete(deployment, new: new, old: old) { await cleanUpHistory(deployment, old: old) }
        return await writeStatus(deployment, new: new, old: old, outcome: outcome, rolloutStep: true)
    }

    /// The new ReplicaSet (the oldest whose template is the Deployment's, apart from the hash
    /// label) and the others.
    func split(_ owned: [ReplicaSetView], for deployment: JSONValue) -> (new: ReplicaSetView?, old: [ReplicaSetView]) {
        let template = deployment[path: ["spec", "template"]] ?? .null
        let ordered = owned.filter { !$0.isBeingDeleted }.sorted(by: ReplicaSetView.byCreation)
        guard let index = ordered.firstIndex(where: { PodTemplateHash.equalIgnoringHash($0.template, template) }) else { return (nil, ordered) }
        var old = ordered
        let new = old.remove(at: index)
        return (new, old)
    }

    /// One RollingUpdate step: grow the new ReplicaSet, or else shrink old ones; whether it did.
    private func rollingStep(_ deployment: JSONValue, new: ReplicaSetView, old: [ReplicaSetView]) async -> Bool {
        let desired = RolloutPlan.desiredReplicas(of: deployment)
        let (surge, unavailable) = RolloutPlan.fenceposts(of: deployment)
        if new.replicas > desired {
            return await scale(new, to: desired, deployment: deployment, surge: surge)
        }
        if new.replicas < desired {
            let all = new.replicas + old.reduce(0) { $0 + $1.replicas }
            let size = RolloutPlan.newReplicaSetReplicas(desired: desired, surge: surge, newReplicas: new.replicas, allReplicas: all)
            if size != new.replicas { return await scale(new, to: size, deployment: deployment, surge: surge) }
        }
        var changed = false
        for (uid, size) in RolloutPlan.oldScaleDown(desired: desired, unavailable: unavailable, new: new, old: old) {
            guard let replicaSet = old.first(where: { $0.uid == uid }), size != replicaSet.replicas else { continue }
            if await scale(replicaSet, to: size, deployment: deployment, surge: surge) { changed = true }
        }
        return changed
    }

    /// Recreate: old ReplicaSets to 0, then, once none of their pods is left running, the new
    /// one to the full size.
    private func recreate(_ deployment: JSONValue, new: ReplicaSetView?, old: [ReplicaSetView], pods: [String: [JSONValue]]) async -> Duration? {
        var outcome = PassOutcome()
        let desired = RolloutPlan.desiredReplicas(of: deployment)
        var new = new
        if let current = new { new = await syncRevision(current, old: old, deployment: deployment) }
        var scaledDown = false
        for replicaSet in old where replicaSet.replicas > 0 {
            if await scale(replicaSet, to: 0, deployment: deployment, surge: 0) { scaledDown = true }
        }
        let oldRunning = old.contains { replicaSet in
            replicaSet.statusReplicas > 0 || (pods[replicaSet.uid] ?? []).contains { pod in
                let phase = pod[path: ["status", "phase"]]?.stringValue
                return phase != "Succeeded" && phase != "Failed"
            }
        }
        if scaledDown || oldRunning {
            return await writeStatus(deployment, new: new, old: old, outcome: outcome, rolloutStep: true)
        }
        if let current = new {
            if current.replicas != desired { _ = await scale(current, to: desired, deployment: deployment, surge: 0) }
        } else {
            outcome.created = await createNewReplicaSet(deployment, old: old, replicas: desired)?.name
        }
        if Self.isComplete(deployment, new: new, old: old) { await cleanUpHistory(deployment, old: old) }
        return await writeStatus(deployment, new: new, old: old, outcome: outcome, rolloutStep: true)
    }

    /// A resize without a rollout (a paused Deployment, or `spec.replicas` changed): one
    /// ReplicaSet with pods takes all; a saturated new one lets the old go; otherwise shared.
    private func resize(_ deployment: JSONValue, new: ReplicaSetView?, old: [ReplicaSetView], surge: Int) async {
        let desired = RolloutPlan.desiredReplicas(of: deployment)
        if let only = RolloutPlan.activeOrLatest(new: new, old: old) {
            _ = await scale(only, to: desired, deployment: deployment, surge: surge)
            return
        }
        if let new, new.replicas == desired, new.desiredReplicas == desired, new.availableReplicas == desired {
            for replicaSet in old where replicaSet.replicas > 0 { _ = await scale(replicaSet, to: 0, deployment: deployment, surge: surge) }
            return
        }
        guard deployment[path: ["spec", "strategy", "type"]]?.stringValue != "Recreate" else { return }
        let active = ((new.map { [$0] } ?? []) + old).filter { $0.replicas > 0 }
        let previous = Int(deployment[path: ["status", "replicas"]]?.int64Value ?? 0)
        let sizes = RolloutPlan.proportionalSizes(desired: desired, surge: surge, active: active, previousTotal: previous)
        for replicaSet in active {
            _ = await scale(replicaSet, to: sizes[replicaSet.uid] ?? replicaSet.replicas, deployment: deployment, surge: surge)
        }
    }

    static func isComplete(_ deployment: JSONValue, new: ReplicaSetView?, old: [ReplicaSetView]) -> Bool {
        let desired = RolloutPlan.desiredReplicas(of: deployment)
        guard let new else { return false }
        let all = [new] + old
        return new.statusReplicas == desired && new.availableReplicas >= desired
            && all.reduce(0) { $0 + $1.statusReplicas } == desired
    }
}
