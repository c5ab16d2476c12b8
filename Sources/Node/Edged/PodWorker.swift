import Foundation
import KubeModel

/// Runs one pod on a ``ContainerRuntime`` as kubelet's pod worker does: init containers one at
/// a time in order (each must succeed), then every container; restarts by `restartPolicy`
/// (`Always`, `OnFailure`, `Never`) with ``RestartBackoff``; volumes (``PodVolumes``) and
/// resource limits; startup, liveness and readiness probes (``probe(now:)``); and the pod's
/// status (phase, conditions, container statuses) from what the runtime reports. A spec that
/// cannot run (no containers, a negative grace period, an unknown restart policy) fails the
/// pod with reason `InvalidPodSpec` and starts nothing.
///
/// Everything is derived from the runtime's containers (the newest attempt of each), so a
/// worker created after an edgecore restart picks up where the last one was: running
/// containers are adopted, not started twice, and back-off continues from the recorded end.
public actor PodWorker {
    public private(set) var pod: Kube.Pod
    private let runtime: any ContainerRuntime
    /// The node's address, reported as the pod's `hostIP` (and `podIP` on the host network).
    private let hostIP: String?
    private let backoff: RestartBackoff
    private let resources: (any PodResourceSource)?
    private let volumes: PodVolumes?
    private let prober: ContainerProber
    /// Why a container could not be started (shown as its waiting reason), by name.
    private var startFailures: [String: ContainerRuntimeError] = [:]
    /// Each volume's host path or why it is missing, from the last sync.
    private var volumePaths: [String: Result<String, ContainerRuntimeError>] = [:]
    /// Probe verdicts of the containers' current attempts, by container name.
    private var probeStates: [String: ProbeStates] = [:]
    /// The pod's containers as the runtime listed them at the start of this sync or probe pass
    /// (listing reads the runtime's directory: once per pass, not once per container).
    private var listed: [ContainerID]?
    /// The states the runtime reported during this pass (a CRI runtime answers each over a
    /// socket: once per container and pass, not once per question).
    private var observed: [ContainerID: ContainerState] = [:]
    /// Why a probe stopped a container attempt (its termination message).
    private var probeKills: [ContainerID: String] = [:]
    /// Where kubelet's events about the pod go.
    private let events: PodEventRecorder?
    /// The attempt whose back-off was last reported, by container name (one BackOff per wait).
    private var backoffReported: [String: Int] = [:]

    /// - Parameters:
    ///   - resources: where ConfigMaps and Secrets the pod uses are read.
    ///   - podsRoot: where pod directories (volumes) go; without it, a pod with volumes does not start.
    ///   - prober: runs HTTP and TCP probes.
    ///   - tokens: the service-account tokens of `projected` volumes.
    ///   - events: where kubelet's events about the pod are recorded.
    public init(pod: Kube.Pod, runtime: any ContainerRuntime, backoff: RestartBackoff = RestartBackoff(), resources: (any PodResourceSource)? = nil,
                podsRoot: String? = nil, prober: ContainerProber = ContainerProber(), hostIP: String? = nil,
                tokens: ServiceAccountTokenManager? = nil, events: PodEventRecorder? = nil) {
        self.events = events
        self.pod = pod
        self.hostIP = hostIP
        self.runtime = runtime
        self.backoff = backoff
        self.resources = resources
        self.prober = prober
        volumes = podsRoot.map { PodVolumes(podsRoot: $0, uid: Self.podID(pod), tokens: tokens) }
    }

    /// Takes a newer version of the pod (its status is kept). Containers already running keep
    /// running; volumes and environments of later starts follow the new spec.
    public func update(_ newer: Kube.Pod) {
        let status = pod.json["status"]
        pod = newer
        pod.json["status"] = status
    }

    private var uid: String { Self.podID(pod) }

    /// The name a pod's containers and directories go by: its UID, or namespace and name for
    /// a pod without one.
    public static func podID(_ pod: Kube.Pod) -> String {
        if let uid = pod.uid, !uid.isEmpty, PodVolumes.isSafeRelativePath(uid), !uid.contains("/") { return uid }
        return (pod.namespace.isEmpty ? "default" : pod.namespace) + "." + pod.name
    }

    /// The newest attempt of container `name` and its state.
    private func newest(_ name: String) async -> (id: ContainerID, state: ContainerState)? {
        let all: [ContainerID]
        if let listed { all = listed } else { all = await runtime.containers(ofPod: uid) }
        let attempts = all.filter { $0.podUID == uid && $0.name == name }
        guard let id = attempts.max(by: { $0.attempt < $1.attempt }) else { return nil }
        return (id, await state(of: id))
    }

    /// The container's state, asked once per pass.
    private func state(of id: ContainerID) async -> ContainerState {
        if let known = observed[id] { return known }
        let state = await runtime.state(of: id)
        if listed != nil { observed[id] = state }
        return state
    }

    /// One step: starts or restarts what is due, then returns the pod's status.
    @discardableResult
    public func sync(now: Date = Date()) async -> JSONValue {
        let problems = PodSpecCheck.problems(of: pod)
        guard problems.isEmpty else {
            let status = rejected(problems, now: now)
            pod.json["status"] = status
            return status
        }
        if let volumes { volumePaths = await volumes.sync(pod, source: resources) }
        listed = await runtime.containers(ofPod: uid)
        defer {
            listed = nil
            observed = [:]
        }
        var initialized = true
        for container in pod.initContainers {
            switch await step(container, now: now, restartOnSuccess: false, restartOnFailure: pod.restartPolicy != "Never") {
            case .succeeded: continue
            case .failed, .waiting, .running:
                initialized = false
            }
            break
        }
        if initialized {
            for container in pod.containers {
                _ = await step(container, now: now, restartOnSuccess: pod.restartPolicy == "Always", restartOnFailure: pod.restartPolicy != "Never")
            }
        }
        let status = await status(initialized: initialized, now: now)
        pod.json["status"] = status
        return status
    }

    private enum Progress { case running, succeeded, failed, waiting }

    /// Starts the container when it never ran or when its restart is due.
    private func step(_ container: Kube.Container, now: Date, restartOnSuccess: Bool, restartOnFailure: Bool) async -> Progress {
        let attempt: Int
        switch await newest(container.name) {
        case nil:
            attempt = 0
        case (_, .running)?:
            return .running
        case (let id, .exited(let code, _, _, let finishedAt))?:
            if code == 0 || !restartOnFailure { probeStates[container.name] = nil }
            let restart = code == 0 ? restartOnSuccess : restartOnFailure
            guard restart else { return code == 0 ? .succeeded : .failed }
            let due = finishedAt.addingTimeInterval(Self.seconds(backoff.delay(beforeAttempt: id.attempt + 1)))
            guard now >= due else {
                if backoffReported[container.name] != id.attempt {
                    backoffReported[container.name] = id.attempt
                    events?.record(pod, container: container.name, .warning, reason: "BackOff",
                                   message: "Back-off restarting failed container \(container.name) in pod \(pod.name)_\(namespace)(\(uid))", now: now)
                }
                return .waiting
            }
            attempt = id.attempt + 1
        case (let id, .unknown)?:
            attempt = id.attempt + 1
        }
        do {
            var launch = try await launch(container, attempt: attempt)
            if let events {
                let pod = pod
                launch.events = ContainerEventSink { warning, reason, message in
                    events.record(pod, container: container.name, warning ? .warning : .normal, reason: reason, message: message)
                }
            }
            let id = try await runtime.start(launch)
            events?.record(pod, container: container.name, .normal, reason: "Created", message: "Created container: \(container.name)", now: now)
            events?.record(pod, container: container.name, .normal, reason: "Started", message: "Started container \(container.name)", now: now)
            startFailures[container.name] = nil
            probeStates[container.name] = nil
            // Kubelet keeps the last ended attempt (for `lastState` and its logs); older ones go.
            listed?.append(id)
            for old in listed ?? [] where old.name == id.name && old.attempt < id.attempt - 1 {
                await runtime.remove(old)
                probeKills[old] = nil
            }
            listed?.removeAll { $0.name == id.name && $0.attempt < id.attempt - 1 }
            return .running
        } catch {
            startFailures[container.name] = error
            // Waiting for a volume (a token still on its way) is not a failure.
            if error.reason != "ContainerCreating" {
                events?.record(pod, container: container.name, .warning, reason: "Failed", message: "Error: \(error.reason): \(error.message)", now: now)
            }
            return .waiting
        }
    }

    /// The pod's namespace, `default` when it names none.
    private var namespace: String { pod.namespace.isEmpty ? "default" : pod.namespace }

    private func launch(_ container: Kube.Container, attempt: Int) async throws(ContainerRuntimeError) -> ContainerLaunch {
        let environment = try await ContainerEnvironment.resolve(container, pod: pod, source: resources)
        var mounts: [ContainerMount] = []
        if !container.json["volumeMounts"].elements.isEmpty {
            guard volumes != nil else {
                throw ContainerRuntimeError(reason: "CreateContainerConfigError", message: "this worker has no pod directory for volumes")
            }
            mounts = try PodVolumes.mounts(for: container, pod: pod, volumes: volumePaths)
        }
        for kind in ["livenessProbe", "readinessProbe", "startupProbe"] {
            if let json = container.json[kind], case .failure(let error) = ContainerProbe.parse(json, container: container) {
                throw ContainerRuntimeError(reason: error.reason, message: "\(kind): \(error.message)")
            }
        }
        let expand = { (text: String) in ContainerEnvironment.expand(text, with: environment) }
        return ContainerLaunch(id: ContainerID(podUID: uid, name: container.name, attempt: attempt), command: container.command.map(expand),
                               args: container.args.map(expand), environment: environment, workingDirectory: container.workingDir, mounts: mounts,
                               resources: try Self.resources(of: container), image: container.image, imagePullPolicy: Self.pullPolicy(of: container),
                               pod: ContainerPod(name: pod.name, namespace: pod.namespace.isEmpty ? "default" : pod.namespace, uid: pod.uid ?? uid,
                                                 hostNetwork: pod.json[path: ["spec", "hostNetwork"]] == .bool(true)))
    }

    /// `imagePullPolicy`, or Kubernetes' default: `Always` for a `latest` or untagged image,
    /// `IfNotPresent` otherwise.
    static func pullPolicy(of container: Kube.Container) -> String {
        if let policy = container.json["imagePullPolicy"]?.stringValue { return policy }
        let image = container.image
        if image.contains("@") { return "IfNotPresent" }
        let name = image.split(separator: "/").last.map(String.init) ?? image
        guard let colon = name.lastIndex(of: ":") else { return "Always" }
        return name[name.index(after: colon)...] == "latest" ? "Always" : "IfNotPresent"
    }

    /// The container's CPU and memory limits and CPU request.
    private static func resources(of container: Kube.Container) throws(ContainerRuntimeError) -> ContainerResources {
        func quantity(_ section: String, _ name: String) throws(ContainerRuntimeError) -> Quantity? {
            guard let text = container.json[path: ["resources", section, name]]?.stringValue ?? container.json[path: ["resources", section, name]]?.int64Value.map(String.init) else { return nil }
            guard let quantity = Quantity(text), quantity.amount >= 0 else {
                throw ContainerRuntimeError(reason: "CreateContainerConfigError", message: "resources.\(section).\(name): \(text) is not a quantity")
            }
            return quantity
        }
        let cpuLimit = try quantity("limits", "cpu")
        // Kubernetes takes the limit as the request when only the limit is given.
        let cpuRequest = try quantity("requests", "cpu") ?? cpuLimit
        return ContainerResources(memoryLimitBytes: try quantity("limits", "memory")?.value,
                                  cpuLimitMillicores: cpuLimit?.milliValue, cpuRequestMillicores: cpuRequest?.milliValue)
    }

    /// Stops every container (SIGTERM, then SIGKILL after the pod's grace period).
    public func terminate(gracePeriod: Duration? = nil) async {
        let grace = gracePeriod ?? .seconds(pod.terminationGracePeriodSeconds)
        let ids = await runtime.containers(ofPod: uid)
        for id in ids {
            if case .running = await runtime.state(of: id) {
                events?.record(pod, container: id.name, .normal, reason: "Killing", message: "Stopping container \(id.name)")
            }
        }
        await withTaskGroup(of: Void.self) { group in
            for id in ids { group.addTask { [runtime] in await runtime.stop(id, gracePeriod: grace) } }
        }
    }

    /// Removes every container of the pod from the runtime (after ``terminate(gracePeriod:)``),
    /// what else the runtime keeps for it (a sandbox), and the pod's volumes.
    public func remove() async {
        for id in await runtime.containers(ofPod: uid) { await runtime.remove(id) }
        await runtime.removePod(uid)
        volumes?.remove()
    }

    // MARK: probes

    /// Runs every probe that is due (after its initial delay, once per period) on running
    /// containers: the startup probe until it passes, then liveness and readiness. A container
    /// whose startup or liveness probe fails `failureThreshold` times in a row is stopped, and
    /// then restarted by its pod's `restartPolicy`; readiness decides the `ready` status.
    public func probe(now: Date = Date()) async {
        var due: [(name: String, kind: ProbeKind, id: ContainerID, probe: ContainerProbe)] = []
        listed = await runtime.containers(ofPod: uid)
        for container in pod.containers {
            guard case (let id, .running(let startedAt))? = await newest(container.name) else { continue }
            var states = probeStates[container.name]
            if states?.attempt != id.attempt { states = ProbeStates(attempt: id.attempt) }
            probeStates[container.name] = states
            let startupPending = container.json["startupProbe"] != nil && states?.startup.passed != true
            for kind in startupPending ? [ProbeKind.startup] : [.liveness, .readiness] {
                guard let json = container.json[kind.field], case .success(let probe) = ContainerProbe.parse(json, container: container) else { continue }
                let verdict = states?[kind] ?? ProbeVerdict()
                guard now >= startedAt.addingTimeInterval(probe.initialDelay) else { continue }
                if let last = verdict.lastRun, now < last.addingTimeInterval(probe.period) { continue }
                due.append((container.name, kind, id, probe))
            }
        }
        listed = nil
        observed = [:]
        guard !due.isEmpty else { return }
        let results = await withTaskGroup(of: (Int, Bool, String).self) { [runtime, prober] group in
            for (index, entry) in due.enumerated() {
                group.addTask {
                    let (passed, message) = await prober.run(entry.probe, in: entry.id, runtime: runtime)
                    return (index, passed, message)
                }
            }
            var results = [(Bool, String)](repeating: (false, ""), count: due.count)
            for await (index, passed, message) in group { results[index] = (passed, message) }
            return results
        }
        var kills: [(ContainerID, String)] = []
        for (entry, (passed, message)) in zip(due, results) {
            // The container may have been restarted while the probes ran.
            guard var states = probeStates[entry.name], states.attempt == entry.id.attempt else { continue }
            var verdict = states[entry.kind]
            verdict.record(passed, message: message, at: now, probe: entry.probe)
            states[entry.kind] = verdict
            probeStates[entry.name] = states
            if !passed {
                events?.record(pod, container: entry.name, .warning, reason: "Unhealthy", message: "\(entry.kind.title) probe failed: \(message)", now: now)
            }
            if entry.kind != .readiness, verdict.passed == false {
                kills.append((entry.id, "\(entry.kind.title) probe failed: \(message)"))
            }
        }
        for (id, message) in kills {
            let kind = message.hasPrefix("Startup") ? "startup" : "liveness"
            events?.record(pod, container: id.name, .normal, reason: "Killing", message: "Container \(id.name) failed \(kind) probe, will be restarted", now: now)
            probeKills[id] = message
            await runtime.stop(id, gracePeriod: .seconds(pod.terminationGracePeriodSeconds))
        }
    }

    // MARK: status

    /// The status of a pod whose spec cannot run.
    private func rejected(_ problems: [String], now: Date) -> JSONValue {
        var status = pod.json["status"]?.objectValue ?? JSONObject()
        status["phase"] = .string("Failed")
        status["reason"] = .string("InvalidPodSpec")
        status["message"] = .string(problems.joined(separator: "; "))
        let time = Self.timestamp(now)
        status["conditions"] = .array(keepingTransitionTimes([
            KubeCondition(type: "PodScheduled", status: true, time: time),
            KubeCondition(type: "Ready", status: false, time: time),
        ]))
        return .object(status)
    }

    private func status(initialized: Bool, now: Date) async -> JSONValue {
        var initStatuses: [(json: JSONValue, state: Summary, message: String?)] = []
        for container in pod.initContainers { initStatuses.append(await containerStatus(container, now: now)) }
        var statuses: [(json: JSONValue, state: Summary, message: String?)] = []
        for container in pod.containers { statuses.append(await containerStatus(container, now: now)) }
        let states = statuses.map { $0.state }
        let phase: String
        if !initialized {
            let initFailed = pod.restartPolicy == "Never" && initStatuses.contains { $0.state == .failed }
            phase = initFailed ? "Failed" : "Pending"
        } else if states.contains(.running) || states.contains(.restarting) {
            phase = "Running"
        } else if states.allSatisfy({ $0 == .succeeded }) {
            phase = "Succeeded"
        } else if states.allSatisfy({ $0 == .succeeded || $0 == .failed }) {
            phase = "Failed"
        } else {
            phase = "Pending"
        }
        let ready = initialized && !statuses.isEmpty && statuses.allSatisfy { $0.json["ready"] == .bool(true) }
        let time = Self.timestamp(now)
        let conditions: [KubeCondition] = [
            KubeCondition(type: "PodScheduled", status: true, time: time),
            KubeCondition(type: "Initialized", status: initialized, time: time),
            KubeCondition(type: "ContainersReady", status: ready, time: time),
            KubeCondition(type: "Ready", status: ready, time: time),
        ]
        var status = pod.json["status"]?.objectValue ?? JSONObject()
        status["phase"] = .string(phase)
        status["conditions"] = .array(keepingTransitionTimes(conditions))
        if !initStatuses.isEmpty { status["initContainerStatuses"] = .array(initStatuses.map(\.json)) }
        status["containerStatuses"] = .array(statuses.map(\.json))
        if status["startTime"] == nil { status["startTime"] = .string(time) }
        if let hostIP {
            status["hostIP"] = .string(hostIP)
            status["hostIPs"] = .array([.object(JSONObject([("ip", .string(hostIP))]))])
            if runtime.podsShareHostNetwork || pod.json[path: ["spec", "hostNetwork"]] == .bool(true) {
                status["podIP"] = .string(hostIP)
                status["podIPs"] = .array([.object(JSONObject([("ip", .string(hostIP))]))])
            }
        }
        if let message = statuses.compactMap({ $0.message }).first { status["message"] = .string(message) } else { status["message"] = nil }
        return .object(status)
    }

    private enum Summary { case running, restarting, succeeded, failed, waiting }

    private func containerStatus(_ container: Kube.Container, now: Date) async -> (json: JSONValue, state: Summary, message: String?) {
        var object = JSONObject([("name", .string(container.name)), ("image", .string(container.image))])
        var summary = Summary.waiting
        var message: String?
        let newest = await newest(container.name)
        object["restartCount"] = .integer(newest?.id.attempt ?? 0)
        var ready = false
        switch newest?.state {
        case .running(let startedAt)?:
            object["state"] = .object(JSONObject([("running", .object(JSONObject([("startedAt", .string(Self.timestamp(startedAt)))])))]))
            summary = .running
            let states = probeStates[container.name].flatMap { $0.attempt == newest?.id.attempt ? $0 : nil }
            let started = container.json["startupProbe"] == nil || states?.startup.passed == true
            ready = started && (container.json["readinessProbe"] == nil || states?.readiness.passed == true)
            object["started"] = .bool(started)
            if let id = newest?.id {
                let warnings = await runtime.warnings(of: id)
                if !warnings.isEmpty { message = "container \(container.name): " + warnings.joined(separator: "; ") }
                // The attempt before this one, while it is kept.
                let previous = ContainerID(podUID: id.podUID, name: id.name, attempt: id.attempt - 1)
                if id.attempt > 0, case let ended = await state(of: previous), case .exited = ended {
                    object["lastState"] = .object(JSONObject([("terminated", .object(terminatedState(previous, ended, reason: await runtime.terminationReason(of: previous))))]))
                }
            }
        case .exited(let code, _, _, _)?:
            var terminated = JSONObject()
            if let newest { terminated = terminatedState(newest.id, newest.state, reason: await runtime.terminationReason(of: newest.id)) }
            let restarts = pod.restartPolicy == "Always" || (pod.restartPolicy == "OnFailure" && code != 0)
            if restarts, pod.containers.contains(where: { $0.name == container.name }) || code != 0 {
                object["state"] = .object(JSONObject([("waiting", .object(JSONObject([
                    ("reason", .string("CrashLoopBackOff")),
                    ("message", .string("back-off restarting the failed container \(container.name)")),
                ])))]))
                object["lastState"] = .object(JSONObject([("terminated", .object(terminated))]))
                summary = .restarting
            } else {
                object["state"] = .object(JSONObject([("terminated", .object(terminated))]))
                summary = code == 0 ? .succeeded : .failed
            }
        case .unknown?, nil:
            let failure = startFailures[container.name]
            object["state"] = .object(JSONObject([("waiting", .object(JSONObject([
                ("reason", .string(failure?.reason ?? "ContainerCreating")),
                ("message", .string(failure?.message ?? "")),
            ])))]))
            message = failure.map { "container \(container.name): \($0.message)" }
        }
        object["ready"] = .bool(ready)
        if object["started"] == nil { object["started"] = .bool(false) }
        // What kubelet always reports (the Kubernetes API requires `imageID`).
        if object["lastState"] == nil { object["lastState"] = .object(JSONObject()) }
        let identity: ContainerIdentity? = if let newest { await runtime.identity(of: newest.id) } else { nil }
        object["imageID"] = .string(identity?.imageID ?? "")
        if let identity { object["containerID"] = .string(identity.containerID) }
        return (.object(object), summary, message)
    }

    /// `conditions` with the last transition time of each that has not changed status.
    private func keepingTransitionTimes(_ conditions: [KubeCondition]) -> [JSONValue] {
        let previous = pod.json[path: ["status", "conditions"]].elements
        return conditions.map { condition in
            var json = condition.json
            if let before = previous.first(where: { $0["type"]?.stringValue == condition.type }), before["status"]?.stringValue == condition.status,
               let time = before["lastTransitionTime"] {
                json["lastTransitionTime"] = time
            }
            return json
        }
    }

    /// A `terminated` container state: exit code, reason, times, and the probe that ended it.
    private func terminatedState(_ id: ContainerID, _ state: ContainerState, reason: String?) -> JSONObject {
        guard case .exited(let code, let signal, let startedAt, let finishedAt) = state else { return JSONObject() }
        var terminated = JSONObject([
            ("exitCode", .integer(code)), ("reason", .string(reason ?? (code == 0 ? "Completed" : "Error"))),
            ("startedAt", .string(Self.timestamp(startedAt))), ("finishedAt", .string(Self.timestamp(finishedAt))),
        ])
        if let signal { terminated["signal"] = .integer(signal) }
        if let killed = probeKills[id] { terminated["message"] = .string(killed) }
        return terminated
    }

    private static func seconds(_ duration: Duration) -> TimeInterval {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }

    static func timestamp(_ date: Date) -> String { date.formatted(.iso8601) }
}

/// Which probe.
enum ProbeKind: Sendable {
    case startup, liveness, readiness

    /// The container field that holds it.
    var field: String {
        switch self {
        case .startup: "startupProbe"
        case .liveness: "livenessProbe"
        case .readiness: "readinessProbe"
        }
    }

    var title: String {
        switch self {
        case .startup: "Startup"
        case .liveness: "Liveness"
        case .readiness: "Readiness"
        }
    }
}

/// A probe's verdict: it passes after `successThreshold` successes in a row and fails after
/// `failureThreshold` failures in a row; `nil` until the first verdict.
struct ProbeVerdict: Sendable {
    var lastRun: Date?
    var successes = 0
    var failures = 0
    var passed: Bool?
    var message = ""

    mutating func record(_ success: Bool, message: String, at time: Date, probe: ContainerProbe) {
        lastRun = time
        self.message = message
        if success {
            successes += 1
            failures = 0
            if successes >= probe.successThreshold { passed = true }
        } else {
            failures += 1
            successes = 0
            if failures >= probe.failureThreshold { passed = false }
        }
    }
}

/// The probe verdicts of one container attempt.
struct ProbeStates: Sendable {
    var attempt: Int
    var startup = ProbeVerdict()
    var liveness = ProbeVerdict()
    var readiness = ProbeVerdict()

    subscript(kind: ProbeKind) -> ProbeVerdict {
        get {
            switch kind {
            case .startup: startup
            case .liveness: liveness
            case .readiness: readiness
            }
        }
        set {
            switch kind {
            case .startup: startup = newValue
            case .liveness: liveness = newValue
            case .readiness: readiness = newValue
            }
        }
    }
}
