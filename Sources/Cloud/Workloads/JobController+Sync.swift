import Foundation
import KubeModel

extension JobController {
    /// One Job: count finished pods, decide whether it is done, failed or suspended, start or
    /// stop pods, write its status; how long until it needs another look.
    func sync(_ job: JSONValue, pods: [JSONValue], now: Date = Date()) async -> Duration? {
        let namespace = job[path: ["metadata", "namespace"]]?.stringValue ?? "default"
        let name = job[path: ["metadata", "name"]]?.stringValue ?? ""
        var status = job["status"]?.objectValue ?? JSONObject()
        var conditions = DeploymentController.Conditions(status["conditions"]?.arrayValue ?? [], now: now)
        let finishedType = ["Complete", "Failed"].first { conditions[$0]?["status"]?.stringValue == "True" }
        if let finishedType {
            // Nothing of a finished Job keeps the tracking finalizer (its counts are final).
            for pod in pods where pod[path: ["metadata", "finalizers"]]?.arrayValue?.contains(.string(Self.trackingFinalizer)) == true {
                await removeTrackingFinalizer(pod)
            }
            return await expireIfDue(job, finishedType: finishedType, conditions: conditions, now: now)
        }
        let deleted = recentlyDeleted()
        let counts = Self.sortPods(pods, deleted: deleted)

        // Finished pods are counted once: recorded as uncounted, finalizer removed, then counted.
        var uncounted = (
            succeeded: Set(status["uncountedTerminatedPods"]?["succeeded"]?.arrayValue?.compactMap(\.stringValue) ?? []),
            failed: Set(status["uncountedTerminatedPods"]?["failed"]?.arrayValue?.compactMap(\.stringValue) ?? []))
        let newlySucceeded = counts.finishedSucceeded.compactMap { $0[path: ["metadata", "uid"]]?.stringValue }.filter { !uncounted.succeeded.contains($0) }
        let newlyFailed = counts.finishedFailed.compactMap { $0[path: ["metadata", "uid"]]?.stringValue }.filter { !uncounted.failed.contains($0) }
        if !newlySucceeded.isEmpty || !newlyFailed.isEmpty {
            uncounted.succeeded.formUnion(newlySucceeded)
            uncounted.failed.formUnion(newlyFailed)
            let recorded = JSONValue.object(JSONObject([
                ("succeeded", .array(uncounted.succeeded.sorted().map(JSONValue.string))), ("failed", .array(uncounted.failed.sorted().map(JSONValue.string))),
            ]))
            guard await patchStatus(job, .object(JSONObject([("uncountedTerminatedPods", recorded)]))) else { return nil }
        }
        for pod in counts.finishedSucceeded + counts.finishedFailed { await removeTrackingFinalizer(pod) }
        let stillTracked = Set((counts.finishedSucceeded + counts.finishedFailed).compactMap { $0[path: ["metadata", "uid"]]?.stringValue })
            .subtracting(finalizersRemoved())
        var succeeded = Int(status["succeeded"]?.int64Value ?? 0)
        var failed = Int(status["failed"]?.int64Value ?? 0)
        let doneSucceeded = uncounted.succeeded.subtracting(stillTracked)
        let doneFailed = uncounted.failed.subtracting(stillTracked)
        succeeded += doneSucceeded.count
        failed += doneFailed.count
        uncounted.succeeded.subtract(doneSucceeded)
        uncounted.failed.subtract(doneFailed)

        let parallelism = Int(job[path: ["spec", "parallelism"]]?.int64Value ?? 1)
        let completions = job[path: ["spec", "completions"]]?.int64Value.map(Int.init)
        let backoffLimit = Int(job[path: ["spec", "backoffLimit"]]?.int64Value ?? 6)
        let suspended = job[path: ["spec", "suspend"]]?.boolValue == true
        var active = counts.active
        var requeue: Duration?
        let stamp = now.formatted(.iso8601)
        if !suspended, status["startTime"] == nil { status["startTime"] = .string(stamp) }

        // Done, failed, past its deadline, or suspended: its pods stop.
        var finished: (type: String, reason: String, message: String)?
        let pendingFailures = uncounted.failed.count
        if let completions, succeeded >= completions {
            finished = ("Complete", "CompletionsReached", "Reached expected number of succeeded pods")
        } else if completions == nil, succeeded > 0, active.isEmpty {
            finished = ("Complete", "CompletionsReached", "Reached expected number of succeeded pods")
        } else if failed + pendingFailures > backoffLimit {
            finished = ("Failed", "BackoffLimitExceeded", "Job has reached the specified backoff limit")
        } else if !suspended, let deadline = job[path: ["spec", "activeDeadlineSeconds"]]?.int64Value,
                  let started = status["startTime"]?.stringValue.flatMap({ try? Date($0, strategy: .iso8601) }) {
            let left = started.addingTimeInterval(Double(deadline)).timeIntervalSince(now)
            if left <= 0 {
                finished = ("Failed", "DeadlineExceeded", "Job was active longer than specified deadline")
            } else {
                requeue = .milliseconds(Int64(left * 1000) + 1)
            }
        }
        let stopping = counts.stopping + ((finished != nil || suspended) ? active.count : 0)
        if finished != nil || suspended {
            for pod in active { await delete(pod) }
            active = []
        }
        if let finished {
            if finished.type == "Failed" {
                conditions.set("FailureTarget", "True", finished.reason, finished.message)
            } else {
                conditions.set("SuccessCriteriaMet", "True", finished.reason, finished.message)
                status["completionTime"] = .string(stamp)
            }
            // Finished once its pods are stopped and each finished one is counted (kube's
            // FailureTarget/SuccessCriteriaMet come first, Failed/Complete after).
            if stopping == 0, uncounted.succeeded.isEmpty, uncounted.failed.isEmpty {
                conditions.set(finished.type, "True", finished.reason, finished.message)
            } else {
                requeue = .milliseconds(200)
            }
        } else if suspended {
            conditions.set("Suspended", "True", "JobSuspended", "Job suspended")
            status["startTime"] = nil
        } else {
            if conditions["Suspended"]?["status"]?.stringValue == "True" {
                conditions.set("Suspended", "False", "JobResumed", "Job resumed")
            }
            // Start pods up to parallelism (and the completions left), after the failure backoff.
            let pending = pendingCreations(for: job[path: ["metadata", "uid"]]?.stringValue ?? "", seen: pods)
            var wanted = parallelism
            if let completions { wanted = min(wanted, completions - succeeded - uncounted.succeeded.count) }
            if completions == nil, succeeded + uncounted.succeeded.count > 0 { wanted = 0 }
            let missing = wanted - active.count - pending
            if missing > 0 {
                let wait = backoff(failures: failed + pendingFailures, lastFailure: counts.lastFailure, now: now)
                if wait > .zero {
                    requeue = min(requeue ?? wait, wait)
                } else {
                    for _ in 0..<missing { await createPod(for: job) }
                }
            }
        }
        status["active"] = .integer(active.count)
        status["ready"] = .integer(active.filter(ReplicaSetController.isReady).count)
        status["succeeded"] = .integer(succeeded)
        status["failed"] = .integer(failed)
        // Empty lists are left out, as kube's `omitempty` leaves them (the patch removes them).
        var left = JSONObject()
        var removal = JSONObject()
        for (key, uids) in [("succeeded", uncounted.succeeded), ("failed", uncounted.failed)] {
            left[key] = uids.isEmpty ? nil : .array(uids.sorted().map(JSONValue.string))
            removal[key] = uids.isEmpty ? .null : .array(uids.sorted().map(JSONValue.string))
        }
        status["uncountedTerminatedPods"] = .object(left)
        if !conditions.list.isEmpty { status["conditions"] = .array(conditions.list) }
        if PodTemplateHash.canonical(.object(status)) != PodTemplateHash.canonical(job["status"] ?? .object(JSONObject())) {
            var patch = status
            patch["uncountedTerminatedPods"] = .object(removal)
            if status["startTime"] == nil { patch["startTime"] = .null }
            _ = await patchStatus(job, .object(patch))
        }
        if let finished {
            logger.debug("job finished", metadata: ["job": "\(namespace)/\(name)", "condition": "\(finished.type)"])
        }
        return requeue
    }

    /// kube's pod failure backoff: none before the first failure, then `failureBackoff`
    /// doubled per further failure (at most 6 minutes) after the latest one.
    func backoff(failures: Int, lastFailure: Date?, now: Date) -> Duration {
        guard failures > 0, let lastFailure else { return .zero }
        let base = failureBackoff * (1 << min(failures - 1, 16))
        let wait = min(base, .seconds(360))
        let elapsed = Duration.milliseconds(Int64(now.timeIntervalSince(lastFailure) * 1000))
        return elapsed >= wait ? .zero : wait - elapsed
    }

    /// A finished Job with `ttlSecondsAfterFinished` is deleted (with its pods) once it has been
    /// finished that long.
    private func expireIfDue(_ job: JSONValue, finishedType: String, conditions: DeploymentController.Conditions, now: Date) async -> Duration? {
        guard let ttl = job[path: ["spec", "ttlSecondsAfterFinished"]]?.int64Value,
              let finishedAt = (conditions[finishedType]?["lastTransitionTime"]?.stringValue).flatMap({ try? Date($0, strategy: .iso8601) })
        else { return nil }
        let left = finishedAt.addingTimeInterval(Double(ttl)).timeIntervalSince(now)
        if left > 0 { return .milliseconds(Int64(left * 1000) + 1) }
        let namespace = job[path: ["metadata", "namespace"]]?.stringValue ?? "default"
        do {
            try await client.delete(Self.jobResource, namespace: namespace, name: job[path: ["metadata", "name"]]?.stringValue ?? "",
                                    options: .object(JSONObject([("propagationPolicy", .string("Background")),
                                                                 ("preconditions", .object(JSONObject([("uid", job[path: ["metadata", "uid"]] ?? .null)])))])))
            count { $0.jobsDeleted += 1 }
        } catch let error as APIError where error.code == 404 || error.code == 409 {
        } catch {
            count { $0.failures += 1 }
        }
        return nil
    }
}
