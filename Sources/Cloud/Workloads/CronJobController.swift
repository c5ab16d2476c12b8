import Foundation
import KubeModel
import Logging
import ServiceLifecycle
import Synchronization

/// kube-controller-manager's CronJob controller, for the embedded control plane: at each time
/// the `schedule` names (in `timeZone`, UTC by default) it creates a Job from `jobTemplate`,
/// named `{cronjob}-{minutes since the epoch}` so one time never makes two, unless the time was
/// missed by more than `startingDeadlineSeconds`; `concurrencyPolicy` Forbid skips a time while a
/// Job is still running and Replace deletes the running ones first. Finished Jobs beyond
/// `successfulJobsHistoryLimit` and `failedJobsHistoryLimit` are deleted. `status.active`,
/// `lastScheduleTime` and `lastSuccessfulTime` as kube reports them; a suspended CronJob
/// starts nothing. Against a real cluster kube-controller-manager does this.
public final class CronJobController: Service, Sendable {
    /// What it counted.
    public struct Counters: Sendable, Equatable {
        public var jobsCreated = 0
        public var jobsDeleted = 0
        public var missedTimes = 0
        public var failures = 0
    }

    let client: KubeClient
    private let cronJobs: Informer
    private let jobs: Informer
    private let now: @Sendable () -> Date
    let events: EventRecorder
    let logger: Logger
    private struct State {
        var counters = Counters()
        /// Jobs created (by CronJob uid, then name) that the Job informer does not show yet.
        var created: [String: [String: (job: JSONValue, at: ContinuousClock.Instant)]] = [:]
    }
    private let state = Mutex(State())

    /// `now` is the clock schedules are read against (tests move it).
    public init(client: KubeClient, now: @escaping @Sendable () -> Date = { Date() }, logger: Logger = Logger(label: "cronjob-controller")) {
        self.client = client
        self.now = now
        self.logger = logger
        events = EventRecorder(client: client, component: "cronjob-controller")
        cronJobs = Informer(client: client, resource: Self.cronJobResource)
        jobs = Informer(client: client, resource: JobController.jobResource)
    }

    static let cronJobResource = APIResource.standard.first { $0.storageName == "cronjobs.batch" }!
    static let scheduledTimestampAnnotation = "batch.kubernetes.io/cronjob-scheduled-timestamp"

    public var counters: Counters { state.withLock { $0.counters } }

    func count(_ change: (inout Counters) -> Void) { state.withLock { change(&$0.counters) } }

    /// Remembers a Job this controller created until the informer shows it.
    func remember(_ job: JSONValue, of cronJobUID: String) {
        state.withLock { $0.created[cronJobUID, default: [:]][job[path: ["metadata", "name"]]?.stringValue ?? ""] = (job, .now) }
    }

    /// The CronJob's Jobs as the informer has them, with those created and not yet seen
    /// (forgotten once seen, or after a minute).
    func jobsIncludingUnseen(_ seen: [JSONValue], of cronJobUID: String) -> [JSONValue] {
        let names = Set(seen.compactMap { $0[path: ["metadata", "name"]]?.stringValue })
        let now = ContinuousClock.now
        let unseen = state.withLock { state -> [JSONValue] in
            state.created[cronJobUID] = state.created[cronJobUID]?.filter { !names.contains($0.key) && now - $0.value.at < .seconds(60) }
            return state.created[cronJobUID]?.values.map(\.job) ?? []
        }
        return seen + unseen
    }

    func forget(_ job: JSONValue, of cronJobUID: String) {
        _ = state.withLock { $0.created[cronJobUID]?.removeValue(forKey: job[path: ["metadata", "name"]]?.stringValue ?? "") }
    }

    /// Runs the informers and syncs on every change and at each CronJob's next time, until
    /// graceful shutdown or cancellation.
    public func run() async {
        await InformerDriven.run([cronJobs, jobs]) { [self] () async -> Duration? in await syncAll() }
    }

    /// One pass over every CronJob; how long until the next scheduled time of any.
    @discardableResult
    public func syncAll() async -> Duration? {
        var owned: [String: [JSONValue]] = [:]
        for job in jobs.objects {
            guard let owner = DeploymentController.controllerUID(of: job, kind: "CronJob") else { continue }
            owned[owner, default: []].append(job)
        }
        var requeue: Duration?
        for cronJob in cronJobs.objects where cronJob[path: ["metadata", "deletionTimestamp"]] == nil {
            let uid = cronJob[path: ["metadata", "uid"]]?.stringValue ?? ""
            if let later = await sync(cronJob, jobs: owned[uid] ?? []) { requeue = min(requeue ?? later, later) }
        }
        return requeue
    }

    /// Whether a Job has finished, and how.
    static func finished(_ job: JSONValue) -> String? {
        job[path: ["status", "conditions"]]?.arrayValue?.first { condition in
            ["Complete", "Failed"].contains(condition["type"]?.stringValue ?? "") && condition["status"]?.stringValue == "True"
        }?["type"]?.stringValue
    }

    /// The most recent time the schedule names in (`after`, `now`], and how many it named there.
    static func mostRecentTime(_ schedule: CronSchedule, after: Date, now: Date, timeZone: TimeZone) -> (time: Date?, count: Int) {
        var cursor = after
        var latest: Date?
        var count = 0
        while let next = schedule.next(after: cursor, timeZone: timeZone), next <= now {
            latest = next
            count += 1
            cursor = next
            if count > 100_000 { break }
        }
        return (latest, count)
    }

    static func reference(to job: JSONValue) -> JSONValue {
        .object(JSONObject([
            ("kind", .string("Job")), ("namespace", job[path: ["metadata", "namespace"]] ?? .null), ("name", job[path: ["metadata", "name"]] ?? .null),
            ("uid", job[path: ["metadata", "uid"]] ?? .null), ("apiVersion", .string("batch/v1")),
            ("resourceVersion", job[path: ["metadata", "resourceVersion"]] ?? .null),
        ]))
    }

    static func time(_ value: JSONValue?) -> Date? { value?.stringValue.flatMap { try? Date($0, strategy: .iso8601) } }

    var currentTime: Date { now() }
}
