import Foundation
import KubeModel

/// Runs one pod on a ``ContainerRuntime`` as kubelet's pod worker does: init containers one at
/// a time in order (each must succeed), then every container; restarts by `restartPolicy`
/// (`Always`, `OnFailure`, `Never`) with ``RestartBackoff``; and the pod's status (phase,
/// conditions, container statuses) from what the runtime reports.
///
/// Everything is derived from the runtime's containers (the newest attempt of each), so a
/// worker created after an edgecore restart picks up where the last one was: running
/// containers are adopted, not started twice, and back-off continues from the recorded end.
public actor PodWorker {
    public private(set) var pod: Kube.Pod
    private let runtime: any ContainerRuntime
    private let backoff: RestartBackoff
    private let resources: (any PodResourceSource)?
    /// Why a container could not be started (shown as its waiting reason), by name.
    private var startFailures: [String: ContainerRuntimeError] = [:]

    /// - Parameter resources: where ConfigMaps and Secrets the pod uses are read.
    public init(pod: Kube.Pod, runtime: any ContainerRuntime, backoff: RestartBackoff = RestartBackoff(), resources: (any PodResourceSource)? = nil) {
        self.pod = pod
        self.runtime = runtime
        self.backoff = backoff
        self.resources = resources
    }

    private var uid: String { pod.uid ?? pod.key }

    /// The newest attempt of container `name` and its state.
    private func newest(_ name: String) -> (id: ContainerID, state: ContainerState)? {
        let attempts = runtime.containers().filter { $0.podUID == uid && $0.name == name }
        guard let id = attempts.max(by: { $0.attempt < $1.attempt }) else { return nil }
        return (id, runtime.state(of: id))
    }

    /// One step: starts or restarts what is due, then returns the pod's status.
    @discardableResult
    public func sync(now: Date = Date()) -> JSONValue {
        var initialized = true
        for container in pod.initContainers {
            switch step(container, now: now, restartOnSuccess: false, restartOnFailure: pod.restartPolicy != "Never") {
            case .succeeded: continue
            case .failed, .waiting, .running:
                initialized = false
            }
            break
        }
        if initialized {
            for container in pod.containers {
                _ = step(container, now: now, restartOnSuccess: pod.restartPolicy == "Always", restartOnFailure: pod.restartPolicy != "Never")
            }
        }
        let status = status(initialized: initialized, now: now)
        pod.json["status"] = status
        return status
    }

    private enum Progress { case running, succeeded, failed, waiting }

    /// Starts the container when it never ran or when its restart is due.
    private func step(_ container: Kube.Container, now: Date, restartOnSuccess: Bool, restartOnFailure: Bool) -> Progress {
        let attempt: Int
        switch newest(container.name) {
        case nil:
            attempt = 0
        case (_, .running)?:
            return .running
        case (let id, .exited(let code, _, _, let finishedAt))?:
            let restart = code == 0 ? restartOnSuccess : restartOnFailure
            guard restart else { return code == 0 ? .succeeded : .failed }
            let due = finishedAt.addingTimeInterval(Self.seconds(backoff.delay(beforeAttempt: id.attempt + 1)))
            guard now >= due else { return .waiting }
            attempt = id.attempt + 1
        case (let id, .unknown)?:
            attempt = id.attempt + 1
        }
        do {
            _ = try runtime.start(try launch(container, attempt: attempt))
            startFailures[container.name] = nil
            return .running
        } catch {
            startFailures[container.name] = error
            return .waiting
        }
    }

    private func launch(_ container: Kube.Container, attempt: Int) throws(ContainerRuntimeError) -> ContainerLaunch {
        let environment = try ContainerEnvironment.resolve(container, pod: pod, source: resources)
        return ContainerLaunch(id: ContainerID(podUID: uid, name: container.name, attempt: attempt), command: container.command + container.args,
                               environment: environment, workingDirectory: container.workingDir)
    }

    /// Stops every container (SIGTERM, then SIGKILL after the pod's grace period).
    public func terminate(gracePeriod: Duration? = nil) async {
        let grace = gracePeriod ?? .seconds(pod.terminationGracePeriodSeconds)
        let ids = runtime.containers().filter { $0.podUID == uid }
        await withTaskGroup(of: Void.self) { group in
            for id in ids { group.addTask { [runtime] in await runtime.stop(id, gracePeriod: grace) } }
        }
    }

    /// Removes every container of the pod from the runtime (after ``terminate(gracePeriod:)``).
    public func remove() {
        for id in runtime.containers() where id.podUID == uid { runtime.remove(id) }
    }

    // MARK: status

    private func status(initialized: Bool, now: Date) -> JSONValue {
        let initStatuses = pod.initContainers.map { containerStatus($0, now: now) }
        let statuses = pod.containers.map { containerStatus($0, now: now) }
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
        status["conditions"] = .array(conditions.map(\.json))
        if !initStatuses.isEmpty { status["initContainerStatuses"] = .array(initStatuses.map(\.json)) }
        status["containerStatuses"] = .array(statuses.map(\.json))
        if let message = statuses.compactMap({ $0.message }).first { status["message"] = .string(message) } else { status["message"] = nil }
        return .object(status)
    }

    private enum Summary { case running, restarting, succeeded, failed, waiting }

    private func containerStatus(_ container: Kube.Container, now: Date) -> (json: JSONValue, state: Summary, message: String?) {
        var object = JSONObject([("name", .string(container.name)), ("image", .string(container.image))])
        var summary = Summary.waiting
        var message: String?
        let newest = newest(container.name)
        object["restartCount"] = .integer(newest?.id.attempt ?? 0)
        var ready = false
        switch newest?.state {
        case .running(let startedAt)?:
            object["state"] = .object(JSONObject([("running", .object(JSONObject([("startedAt", .string(Self.timestamp(startedAt)))])))]))
            summary = .running
            ready = true
        case .exited(let code, let signal, let startedAt, let finishedAt)?:
            var terminated = JSONObject([
                ("exitCode", .integer(code)), ("reason", .string(code == 0 ? "Completed" : "Error")),
                ("startedAt", .string(Self.timestamp(startedAt))), ("finishedAt", .string(Self.timestamp(finishedAt))),
            ])
            if let signal { terminated["signal"] = .integer(signal) }
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
        object["started"] = .bool(summary == .running)
        return (.object(object), summary, message)
    }

    private static func seconds(_ duration: Duration) -> TimeInterval {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }

    static func timestamp(_ date: Date) -> String { date.formatted(.iso8601) }
}
