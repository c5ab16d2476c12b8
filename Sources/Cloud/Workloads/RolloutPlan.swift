import KubeModel

/// The arithmetic of a Deployment rollout, as kube-controller-manager's deployment controller
/// does it: how far a RollingUpdate may surge and fall short, how many pods the new ReplicaSet
/// may have, which old ReplicaSets shrink and by how much, and how a resize is shared among
/// the ReplicaSets of a rollout in progress. Pure functions of the ReplicaSets' numbers.
enum RolloutPlan {
    /// An `IntOrString` (`3` or `"25%"`) against `total`: a percentage rounds up for a surge and
    /// down for unavailability, as kube's `GetScaledValueFromIntOrPercent`.
    static func resolve(_ value: JSONValue?, total: Int, roundUp: Bool, default fallback: Int) -> Int {
        guard let value else { return fallback }
        if let number = value.int64Value { return Int(number) }
        guard let text = value.stringValue, text.hasSuffix("%"), let percent = Int(text.dropLast()) else { return fallback }
        let scaled = percent * total
        return roundUp ? (scaled + 99) / 100 : scaled / 100
    }

    /// `maxSurge` and `maxUnavailable` of a RollingUpdate Deployment (0 and 0 for Recreate); both
    /// 0 would never progress, so unavailability is then 1.
    static func fenceposts(of deployment: JSONValue) -> (surge: Int, unavailable: Int) {
        guard deployment[path: ["spec", "strategy", "type"]]?.stringValue != "Recreate" else { return (0, 0) }
        let desired = desiredReplicas(of: deployment)
        let rolling = deployment[path: ["spec", "strategy", "rollingUpdate"]]
        let surge = resolve(rolling?["maxSurge"], total: desired, roundUp: true, default: (desired * 25 + 99) / 100)
        let unavailable = resolve(rolling?["maxUnavailable"], total: desired, roundUp: false, default: desired * 25 / 100)
        if surge == 0, unavailable == 0 { return (0, 1) }
        return (surge, unavailable)
    }

    /// `spec.replicas`, 1 when absent.
    static func desiredReplicas(of deployment: JSONValue) -> Int {
        Int(deployment[path: ["spec", "replicas"]]?.int64Value ?? 1)
    }

    /// How many pods the new ReplicaSet may have now: up to `desired + surge` pods in all,
    /// never more than `desired` in the new one.
    static func newReplicaSetReplicas(desired: Int, surge: Int, newReplicas: Int, allReplicas: Int) -> Int {
        let maxTotal = desired + surge
        guard allReplicas < maxTotal else { return newReplicas }
        return newReplicas + min(maxTotal - allReplicas, max(0, desired - newReplicas))
    }

    /// The sizes old ReplicaSets shrink to, by uid: first the pods that are not available
    /// (oldest ReplicaSet first), then available ones down to `desired - unavailable` available
    /// pods in all, counting the new ReplicaSet's pods that are not yet available as missing.
    static func oldScaleDown(desired: Int, unavailable: Int, new: ReplicaSetView?, old: [ReplicaSetView]) -> [String: Int] {
        let oldTotal = old.reduce(0) { $0 + $1.replicas }
        guard oldTotal > 0 else { return [:] }
        let newReplicas = new?.replicas ?? 0
        let allTotal = oldTotal + newReplicas
        let minAvailable = desired - unavailable
        let newUnavailable = newReplicas - (new?.countedAvailable ?? 0)
        let maxScaledDown = allTotal - minAvailable - newUnavailable
        guard maxScaledDown > 0 else { return [:] }
        var sizes: [String: Int] = [:]
        let ordered = old.sorted(by: ReplicaSetView.byCreation)
        func size(_ replicaSet: ReplicaSetView) -> Int { sizes[replicaSet.uid] ?? replicaSet.replicas }
        // Pods that are not available go first: they cost no availability.
        var cleaned = 0
        for replicaSet in ordered {
            guard cleaned < maxScaledDown else { break }
            let current = size(replicaSet)
            let unhealthy = current - min(replicaSet.availableReplicas, current)
            guard current > 0, unhealthy > 0 else { continue }
            let count = min(maxScaledDown - cleaned, unhealthy)
            sizes[replicaSet.uid] = current - count
            cleaned += count
        }
        // Then available pods, as long as enough stay available.
        let available = (new?.countedAvailable ?? 0) + ordered.reduce(0) { $0 + min($1.availableReplicas, size($1)) }
        guard available > minAvailable else { return sizes }
        let total = available - minAvailable
        var scaled = 0
        for replicaSet in ordered {
            guard scaled < total else { break }
            let current = size(replicaSet)
            guard current > 0 else { continue }
            let count = min(current, total - scaled)
            sizes[replicaSet.uid] = current - count
            scaled += count
        }
        return sizes
    }

    /// The ReplicaSet that alone should hold all replicas on a resize: the only one with pods,
    /// or (when none has) the new one, else the newest old one; `nil` while several have pods.
    static func activeOrLatest(new: ReplicaSetView?, old: [ReplicaSetView]) -> ReplicaSetView? {
        let all = (new.map { [$0] } ?? []) + old
        let active = all.filter { $0.replicas > 0 }
        switch active.count {
        case 0: return new ?? old.sorted(by: ReplicaSetView.byCreation).last
        case 1: return active[0]
        default: return nil
        }
    }

    /// A resize of a Deployment in the middle of a rollout, shared among its ReplicaSets with
    /// pods in proportion to their size (kube's proportional scaling): sizes by uid. Growth goes
    /// to the largest first (newer on a tie), shrinking to the largest first (older on a tie);
    /// what rounding leaves over goes to the first.
    static func proportionalSizes(desired: Int, surge: Int, active: [ReplicaSetView], previousTotal: Int) -> [String: Int] {
        let allowed = desired > 0 ? desired + surge : 0
        let current = active.reduce(0) { $0 + $1.replicas }
        let toAdd = allowed - current
        guard toAdd != 0, !active.isEmpty else { return [:] }
        let ordered = active.sorted { left, right in
            if left.replicas != right.replicas { return left.replicas > right.replicas }
            return toAdd > 0 ? !ReplicaSetView.byCreation(left, right) : ReplicaSetView.byCreation(left, right)
        }
        var sizes: [String: Int] = [:]
        var added = 0
        for replicaSet in ordered {
            var proportion = 0
            if replicaSet.replicas > 0, toAdd != added {
                let fraction: Int
                if desired == 0 {
                    fraction = -replicaSet.replicas
                } else {
                    let annotated = replicaSet.maxReplicas ?? previousTotal
                    let newSize = annotated > 0 ? Int((Double(replicaSet.replicas * allowed) / Double(annotated)).rounded(.up)) : replicaSet.replicas
                    fraction = newSize - replicaSet.replicas
                }
                let left = toAdd - added
                proportion = toAdd > 0 ? min(fraction, left) : max(fraction, left)
            }
            sizes[replicaSet.uid] = replicaSet.replicas + proportion
            added += proportion
        }
        if let first = ordered.first, toAdd != added {
            sizes[first.uid] = max(0, (sizes[first.uid] ?? first.replicas) + toAdd - added)
        }
        return sizes
    }
}
