import Foundation
import KubeModel

extension DeploymentController {
    /// Writes the Deployment's status as kube computes it, when it changed; how long until its
    /// progress deadline needs another look, while a rollout is under way.
    func writeStatus(_ deployment: JSONValue, new: ReplicaSetView?, old: [ReplicaSetView], outcome: PassOutcome, rolloutStep: Bool,
                     now: Date = Date()) async -> Duration? {
        let (status, requeue) = Self.status(of: deployment, new: new, old: old, outcome: outcome, rolloutStep: rolloutStep, now: now)
        let current = deployment["status"] ?? .object(JSONObject())
        if PodTemplateHash.canonical(current) != PodTemplateHash.canonical(status) {
            await patchStatus(deployment, status)
        }
        return requeue
    }

    /// The status kube's deployment controller would write, and the requeue for a deadline.
    static func status(of deployment: JSONValue, new: ReplicaSetView?, old: [ReplicaSetView], outcome: PassOutcome, rolloutStep: Bool,
                       now: Date) -> (JSONValue, Duration?) {
        let desired = RolloutPlan.desiredReplicas(of: deployment)
        let (_, maxUnavailable) = RolloutPlan.fenceposts(of: deployment)
        let all = (new.map { [$0] } ?? []) + old
        let available = all.reduce(0) { $0 + $1.availableReplicas }
        let specTotal = all.reduce(0) { $0 + $1.replicas }
        let previous = deployment["status"]?.objectValue ?? JSONObject()
        var status = JSONObject([
            ("observedGeneration", deployment[path: ["metadata", "generation"]] ?? .integer(1)),
            ("replicas", .integer(all.reduce(0) { $0 + $1.statusReplicas })),
            ("updatedReplicas", .integer(new?.statusReplicas ?? 0)),
            ("readyReplicas", .integer(all.reduce(0) { $0 + $1.readyReplicas })),
            ("availableReplicas", .integer(available)),
            ("unavailableReplicas", .integer(max(0, specTotal - available))),
        ])
        if let collisions = previous["collisionCount"] { status["collisionCount"] = collisions }
        var conditions = Conditions(previous["conditions"]?.arrayValue ?? [], now: now)
        if available >= desired - maxUnavailable {
            conditions.set("Available", "True", "MinimumReplicasAvailable", "Deployment has minimum availability.")
        } else {
            conditions.set("Available", "False", "MinimumReplicasUnavailable", "Deployment does not have minimum availability.")
        }
        var requeue: Duration?
        let deadline = deployment[path: ["spec", "progressDeadlineSeconds"]]?.int64Value
        let paused = deployment[path: ["spec", "paused"]]?.boolValue == true
        if let deadline, deadline != Int64(Int32.max) {
            let progressing = conditions["Progressing"]
            if paused {
                if progressing?["reason"]?.stringValue != "DeploymentPaused" {
                    conditions.set("Progressing", "Unknown", "DeploymentPaused", "Deployment is paused")
                }
            } else if progressing?["reason"]?.stringValue == "DeploymentPaused" {
                conditions.set("Progressing", "Unknown", "DeploymentResumed", "Deployment is resumed")
            }
            if let created = outcome.created {
                conditions.set("Progressing", "True", "NewReplicaSetCreated", "Created new replica set \"\(created)\"")
            } else if let new, conditions["Progressing"] == nil {
                conditions.set("Progressing", "True", "FoundNewReplicaSet", "Found new replica set \"\(new.name)\"")
            }
            if rolloutStep, !paused {
                let subject = new.map { "ReplicaSet \"\($0.name)\"" } ?? "Deployment \"\(deployment[path: ["metadata", "name"]]?.stringValue ?? "")\""
                let updated = new?.statusReplicas ?? 0
                let replicas = all.reduce(0) { $0 + $1.statusReplicas }
                let complete = replicas == desired && updated == desired && available == desired
                func previousCount(_ key: String) -> Int { Int(previous[key]?.int64Value ?? 0) }
                let progressed = updated > previousCount("updatedReplicas")
                    || replicas - updated < previousCount("replicas") - previousCount("updatedReplicas")
                    || all.reduce(0) { $0 + $1.readyReplicas } > previousCount("readyReplicas")
                    || available > previousCount("availableReplicas")
                if complete {
                    conditions.set("Progressing", "True", "NewReplicaSetAvailable", "\(subject) has successfully progressed.")
                } else if progressed {
                    conditions.progressed("\(subject) is progressing.")
                } else if conditions.hasTimedOut(after: deadline) {
                    conditions.set("Progressing", "False", "ProgressDeadlineExceeded", "\(subject) has timed out progressing.")
                }
                if !complete, let left = conditions.secondsUntilDeadline(deadline), left > 0 {
                    requeue = .milliseconds(Int64(left * 1000) + 1)
                }
            }
        }
        if !conditions.list.isEmpty { status["conditions"] = .array(conditions.list) }
        return (.object(status), requeue)
    }

    /// A Deployment's conditions, changed as kube's `SetDeploymentCondition` changes them: a
    /// condition with the same status and reason is left as it is; one whose status stays keeps
    /// its `lastTransitionTime`; a changed one moves to the end.
    struct Conditions {
        private(set) var list: [JSONValue]
        let now: Date
        private var stamp: String { now.formatted(.iso8601) }

        init(_ list: [JSONValue], now: Date) {
            self.list = list
            self.now = now
        }

        subscript(type: String) -> JSONObject? {
            list.first { $0["type"]?.stringValue == type }?.objectValue
        }

        mutating func set(_ type: String, _ status: String, _ reason: String, _ message: String) {
            let current = self[type]
            if current?["status"]?.stringValue == status, current?["reason"]?.stringValue == reason { return }
            let transition = current?["status"]?.stringValue == status ? current?["lastTransitionTime"] ?? .string(stamp) : .string(stamp)
            replace(type, status, reason, message, transition: transition)
        }

        /// Progress seen: `ReplicaSetUpdated`, with `lastUpdateTime` now even if the reason is the same.
        mutating func progressed(_ message: String) {
            let current = self["Progressing"]
            let transition = current?["status"]?.stringValue == "True" ? current?["lastTransitionTime"] ?? .string(stamp) : .string(stamp)
            replace("Progressing", "True", "ReplicaSetUpdated", message, transition: transition)
        }

        /// Whether `Progressing` last moved more than `seconds` ago (and the rollout is not done).
        func hasTimedOut(after seconds: Int64) -> Bool {
            guard let current = self["Progressing"] else { return false }
            switch current["reason"]?.stringValue {
            case "NewReplicaSetAvailable": return false
            case "ProgressDeadlineExceeded": return true
            default: break
            }
            guard let text = current["lastUpdateTime"]?.stringValue, let since = try? Date(text, strategy: .iso8601) else { return false }
            return since.addingTimeInterval(Double(seconds)) < now
        }

        /// Seconds until the progress deadline of a rollout that has not timed out.
        func secondsUntilDeadline(_ seconds: Int64) -> Double? {
            guard let current = self["Progressing"], current["reason"]?.stringValue != "ProgressDeadlineExceeded",
                  let text = current["lastUpdateTime"]?.stringValue, let since = try? Date(text, strategy: .iso8601) else { return nil }
            return since.addingTimeInterval(Double(seconds)).timeIntervalSince(now)
        }

        private mutating func replace(_ type: String, _ status: String, _ reason: String, _ message: String, transition: JSONValue) {
            list.removeAll { $0["type"]?.stringValue == type }
            list.append(.object(JSONObject([
                ("type", .string(type)), ("status", .string(status)), ("lastUpdateTime", .string(stamp)),
                ("lastTransitionTime", transition), ("reason", .string(reason)), ("message", .string(message)),
            ])))
        }
    }
}
