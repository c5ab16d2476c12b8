import Foundation
import KubeModel

extension CronJobController {
    /// One CronJob: its active list and history, then the Job of a due time; how long until
    /// its next time.
    func sync(_ cronJob: JSONValue, jobs seen: [JSONValue]) async -> Duration? {
        let now = currentTime
        let uid = cronJob[path: ["metadata", "uid"]]?.stringValue ?? ""
        let jobs = jobsIncludingUnseen(seen, of: uid)
        let namespace = cronJob[path: ["metadata", "namespace"]]?.stringValue ?? "default"
        let name = cronJob[path: ["metadata", "name"]]?.stringValue ?? ""
        var running = jobs.filter { Self.finished($0) == nil && $0[path: ["metadata", "deletionTimestamp"]] == nil }
        let succeeded = jobs.filter { Self.finished($0) == "Complete" }
        var lastSuccess = Self.time(cronJob[path: ["status", "lastSuccessfulTime"]])
        for job in succeeded {
            if let completed = Self.time(job[path: ["status", "completionTime"]]), completed > (lastSuccess ?? .distantPast) { lastSuccess = completed }
        }
        await cleanUpHistory(cronJob, jobs: jobs)

        var lastScheduled = Self.time(cronJob[path: ["status", "lastScheduleTime"]])
        var requeue: Duration?
        let suspended = cronJob[path: ["spec", "suspend"]]?.boolValue == true
        if let text = cronJob[path: ["spec", "schedule"]]?.stringValue, let schedule = try? CronSchedule(parsing: text) {
            let timeZone = cronJob[path: ["spec", "timeZone"]]?.stringValue.flatMap(TimeZone.init(identifier:)) ?? TimeZone(identifier: "UTC")!
            var earliest = lastScheduled ?? Self.time(cronJob[path: ["metadata", "creationTimestamp"]]) ?? now
            let deadline = cronJob[path: ["spec", "startingDeadlineSeconds"]]?.int64Value
            if let deadline { earliest = max(earliest, now.addingTimeInterval(-Double(deadline))) }
            let (due, missed) = Self.mostRecentTime(schedule, after: earliest, now: now, timeZone: timeZone)
            if missed > 100 {
                try? await events.record(reference(to: cronJob), type: "Warning", reason: "TooManyMissedTimes",
                                         message: "too many missed start times: \(missed). Set or decrease .spec.startingDeadlineSeconds or check clock skew")
            }
            // A time skipped under Forbid is not taken: it runs when the Job before it is done,
            // if still within the starting deadline (as kube does).
            if let due, !suspended, let started = await start(cronJob, at: due, running: &running, now: now) {
                running.append(started)
                lastScheduled = due
            }
            if let next = schedule.next(after: now, timeZone: timeZone) {
                requeue = .milliseconds(max(1, Int64(next.timeIntervalSince(now) * 1000) + 1))
            }
        }
        var status = JSONObject([("active", .array(running.map(Self.reference)))])
        if running.isEmpty { status["active"] = .null }
        if let lastScheduled { status["lastScheduleTime"] = .string(lastScheduled.formatted(.iso8601)) }
        if let lastSuccess { status["lastSuccessfulTime"] = .string(lastSuccess.formatted(.iso8601)) }
        let current = cronJob["status"] ?? .object(JSONObject())
        let changed = status.contains { key, value in
            let names: (JSONValue?) -> [String] = { $0?.arrayValue?.compactMap { $0["name"]?.stringValue } ?? [] }
            return key == "active" ? names(current["active"]) != names(value) : current[key] != value
        }
        if changed {
            do {
                _ = try await client.patch(Self.cronJobResource, namespace: namespace, name: name, .object(JSONObject([("status", .object(status))])), status: true)
            } catch let error as APIError where error.code == 404 {
            } catch {
                count { $0.failures += 1 }
                logger.warning("cannot write a cronjob's status", metadata: ["cronjob": "\(namespace)/\(name)", "error": "\(error)"])
            }
        }
        return requeue
    }

    /// Starts the Job of `time` as the concurrency policy allows; the Job, or `nil` if none
    /// was started (skipped, missed, or one for that time exists already).
    private func start(_ cronJob: JSONValue, at time: Date, running: inout [JSONValue], now: Date) async -> JSONValue? {
        let namespace = cronJob[path: ["metadata", "namespace"]]?.stringValue ?? "default"
        let name = cronJob[path: ["metadata", "name"]]?.stringValue ?? ""
        let jobName = "\(name)-\(Int(time.timeIntervalSince1970) / 60)"
        if running.contains(where: { $0[path: ["metadata", "name"]]?.stringValue == jobName }) { return nil }
        if let deadline = cronJob[path: ["spec", "startingDeadlineSeconds"]]?.int64Value, time.addingTimeInterval(Double(deadline)) < now {
            count { $0.missedTimes += 1 }
            return nil
        }
        switch cronJob[path: ["spec", "concurrencyPolicy"]]?.stringValue {
        case "Forbid" where !running.isEmpty:
            return nil
        case "Replace":
            for job in running {
                await deleteJob(job)
                forget(job, of: cronJob[path: ["metadata", "uid"]]?.stringValue ?? "")
            }
            running = []
        default:
            break
        }
        var metadata = cronJob[path: ["spec", "jobTemplate", "metadata"]]?.objectValue ?? JSONObject()
        metadata["name"] = .string(jobName)
        metadata["namespace"] = .string(namespace)
        var annotations = metadata["annotations"]?.objectValue ?? JSONObject()
        annotations[Self.scheduledTimestampAnnotation] = .string(time.formatted(.iso8601))
        metadata["annotations"] = .object(annotations)
        metadata["ownerReferences"] = .array([.object(JSONObject([
            ("apiVersion", .string("batch/v1")), ("kind", .string("CronJob")), ("name", .string(name)),
            ("uid", cronJob[path: ["metadata", "uid"]] ?? .null), ("controller", .bool(true)), ("blockOwnerDeletion", .bool(true)),
        ]))])
        let job = JSONValue.object(JSONObject([
            ("apiVersion", .string("batch/v1")), ("kind", .string("Job")), ("metadata", .object(metadata)),
            ("spec", cronJob[path: ["spec", "jobTemplate", "spec"]] ?? .object(JSONObject())),
        ]))
        do {
            let created = try await client.create(JobController.jobResource, namespace: namespace, job)
            remember(created, of: cronJob[path: ["metadata", "uid"]]?.stringValue ?? "")
            count { $0.jobsCreated += 1 }
            try? await events.record(reference(to: cronJob), type: "Normal", reason: "SuccessfulCreate", message: "Created job \(jobName)")
            return created
        } catch let error as APIError where error.code == 409 {
            // Made already (by an earlier pass whose status write was lost): the time is taken.
            return (try? await client.get(JobController.jobResource, namespace: namespace, name: jobName)).flatMap { Self.finished($0) == nil ? $0 : nil }
        } catch {
            count { $0.failures += 1 }
            try? await events.record(reference(to: cronJob), type: "Warning", reason: "FailedCreate", message: "Error creating job: \(error)")
            return nil
        }
    }

    /// Deletes finished Jobs beyond the history limits, oldest first.
    private func cleanUpHistory(_ cronJob: JSONValue, jobs: [JSONValue]) async {
        for (outcome, limitKey, fallback) in [("Complete", "successfulJobsHistoryLimit", Int64(3)), ("Failed", "failedJobsHistoryLimit", Int64(1))] {
            let limit = Int(cronJob[path: ["spec", limitKey]]?.int64Value ?? fallback)
            let finished = jobs.filter { Self.finished($0) == outcome && $0[path: ["metadata", "deletionTimestamp"]] == nil }
                .sorted { ($0[path: ["metadata", "creationTimestamp"]]?.stringValue ?? "") < ($1[path: ["metadata", "creationTimestamp"]]?.stringValue ?? "") }
            guard finished.count > limit else { continue }
            for job in finished.prefix(finished.count - limit) { await deleteJob(job) }
        }
    }

    private func deleteJob(_ job: JSONValue) async {
        do {
            try await client.delete(JobController.jobResource, namespace: job[path: ["metadata", "namespace"]]?.stringValue ?? "default",
                                    name: job[path: ["metadata", "name"]]?.stringValue ?? "",
                                    options: .object(JSONObject([("propagationPolicy", .string("Background"))])))
            count { $0.jobsDeleted += 1 }
        } catch let error as APIError where error.code == 404 {
        } catch {
            count { $0.failures += 1 }
        }
    }

    func reference(to cronJob: JSONValue) -> JSONValue {
        .object(JSONObject([
            ("apiVersion", .string("batch/v1")), ("kind", .string("CronJob")),
            ("name", cronJob[path: ["metadata", "name"]] ?? .null), ("namespace", cronJob[path: ["metadata", "namespace"]] ?? .null),
            ("uid", cronJob[path: ["metadata", "uid"]] ?? .null),
        ]))
    }
}
