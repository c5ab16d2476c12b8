import Foundation
import KubeModel
import Logging
import Synchronization

/// Runs containers in a CRI runtime (containerd with runc) through its gRPC socket, as kubelet
/// does: one pod sandbox per pod (with the host's network for `hostNetwork` pods, a network
/// namespace of the pod's own otherwise), its containers created and started in it from
/// images, pulled when missing unless the policy is `Never`.
///
/// Containers and sandboxes carry the labels ``podIDLabel`` and ``containerNameLabel``, and
/// the container's attempt is its CRI metadata attempt: nothing else is kept, so a runtime
/// opened after an edgecore restart finds everything again by asking the runtime. Logs are in
/// the CRI format under `{logRoot}/{pod ID}/{container}/{attempt}.log`.
public final class CRIRuntime: ContainerRuntime {
    /// Pods other than host-network ones get the CRI runtime's pod network.
    public var podsShareHostNetwork: Bool { false }

    /// `containerd://1.6.20` (the runtime's name and version), or `remote://unknown` when it does not answer.
    public func versionDescription() async -> String {
        guard let version = try? await version() else { return "remote://unknown" }
        let parts = version.split(separator: " ", maxSplits: 1)
        return parts.count == 2 ? "\(parts[0])://\(parts[1].hasPrefix("v") ? parts[1].dropFirst() : parts[1])" : "remote://\(version)"
    }

    /// Marks what Edged created (and carries the pod ID it created it for).
    public static let podIDLabel = "edged.kubeedge.io/pod-id"
    public static let containerNameLabel = "io.kubernetes.container.name"

    /// The socket's path.
    public let socketPath: String
    public let logRoot: String
    /// How long a call may take beyond the time it waits for on purpose (a stop's grace period).
    public let callTimeout: Duration
    private let client: GRPCUnixClient
    private let logger: Logger

    /// CRI container IDs by container, as last listed or created.
    private let known = Mutex<[ContainerID: String]>([:])
    /// The runtime's reasons for ended containers (`OOMKilled`), from their last status.
    private let reasons = Mutex<[ContainerID: String]>([:])

    /// - Parameters:
    ///   - endpoint: `unix:///run/containerd/containerd.sock`, or the socket's path.
    ///   - logRoot: where container logs go (created when missing).
    ///   - maxMessageBytes: the largest reply taken from the runtime.
    public init(endpoint: String, logRoot: String, callTimeout: Duration = .seconds(10), maxMessageBytes: Int = 16 << 20,
                logger: Logger = Logger(label: "edged.cri")) throws(ContainerRuntimeError) {
        guard let path = Self.endpointSocketPath(endpoint) else {
            throw ContainerRuntimeError(reason: "RuntimeUnavailable", message: "the runtime endpoint \(endpoint) is not unix:///path or an absolute path")
        }
        do {
            try FileManager.default.createDirectory(atPath: logRoot, withIntermediateDirectories: true)
        } catch {
            throw ContainerRuntimeError(reason: "RuntimeUnavailable", message: "cannot create the log directory \(logRoot): \(error)")
        }
        socketPath = path
        self.logRoot = logRoot
        self.callTimeout = callTimeout
        self.logger = logger
        client = GRPCUnixClient(socketPath: path, maxMessageBytes: maxMessageBytes)
    }

    /// The socket path of a `unix://` endpoint or an absolute path.
    public static func endpointSocketPath(_ endpoint: String) -> String? {
        let path = endpoint.hasPrefix("unix://") ? String(endpoint.dropFirst("unix://".count)) : endpoint
        return path.hasPrefix("/") ? path : nil
    }

    private func call(_ method: String, _ request: [UInt8], extra: Duration = .zero) async throws(GRPCCallError) -> [UInt8] {
        try await client.call(method, request, timeout: callTimeout + extra)
    }

    /// The runtime's images (`ListImages`) as kubelet reports them: each image's digests, then
    /// its tags, at most five names; none when the runtime does not answer.
    public func images() async -> [NodeImage] {
        guard let reply = try? await call(CRI.imageService + "ListImages", []), let images = try? CRI.images(reply) else { return [] }
        return images.map { NodeImage(names: Array(($0.digests + $0.tags).prefix(NodeStatus.maxNamesPerImage)), sizeBytes: $0.size) }
    }

    /// The runtime's name and version (`containerd 1.6.20~ds1`); fails when it does not answer.
    public func version() async throws(ContainerRuntimeError) -> String {
        do {
            let reply = try await call(CRI.runtimeService + "Version", CRI.id("v1"))
            return try CRI.firstString(reply, field: 2) + " " + CRI.firstString(reply, field: 3)
        } catch {
            throw ContainerRuntimeError(reason: "RuntimeUnavailable", message: "the CRI runtime at \(socketPath) does not answer: \(error)")
        }
    }

    public func logPath(of id: ContainerID) -> String { "\(logRoot)/\(id.podUID)/\(id.name)/\(id.attempt).log" }

    // MARK: start

    public func start(_ launch: ContainerLaunch) async throws(ContainerRuntimeError) -> ContainerID {
        let id = launch.id
        guard !launch.image.isEmpty else {
            throw ContainerRuntimeError(reason: "InvalidImageName", message: "the container has no image")
        }
        try await ensureImage(launch.image, policy: launch.imagePullPolicy, events: launch.events)
        let pod = launch.pod ?? ContainerPod(name: id.podUID, namespace: "default", uid: id.podUID, hostNetwork: false)
        let (sandboxID, sandbox) = try await readySandbox(for: id.podUID, pod: pod)
        try? FileManager.default.createDirectory(atPath: "\(logRoot)/\(id.podUID)/\(id.name)", withIntermediateDirectories: true)
        let config = CRI.ContainerConfig(
            name: id.name, attempt: id.attempt, image: launch.image, command: launch.command, args: launch.args,
            workingDirectory: launch.workingDirectory, environment: launch.environment, mounts: launch.mounts,
            labels: [Self.podIDLabel: id.podUID, Self.containerNameLabel: id.name, "io.kubernetes.pod.name": pod.name,
                     "io.kubernetes.pod.namespace": pod.namespace, "io.kubernetes.pod.uid": pod.uid],
            logPath: "\(id.name)/\(id.attempt).log", resources: launch.resources, hostNetwork: pod.hostNetwork)
        let containerID: String
        do {
            containerID = try CRI.firstString(try await call(CRI.runtimeService + "CreateContainer",
                                                              CRI.createContainer(sandboxID: sandboxID, config, sandbox: sandbox)))
        } catch {
            throw ContainerRuntimeError(reason: "CreateContainerError", message: "\(error)")
        }
        do {
            _ = try await call(CRI.runtimeService + "StartContainer", CRI.id(containerID))
        } catch {
            // A container that never started is not an attempt: the next one takes its place.
            _ = try? await call(CRI.runtimeService + "RemoveContainer", CRI.id(containerID))
            throw ContainerRuntimeError(reason: "RunContainerError", message: "\(error)")
        }
        known.withLock { $0[id] = containerID }
        return id
    }

    /// Pulls the image when it is missing (unless the policy says never) or when the policy says always.
    private func ensureImage(_ image: String, policy: String, events: ContainerEventSink?) async throws(ContainerRuntimeError) {
        let present: Bool
        do {
            present = try CRI.hasImage(try await call(CRI.imageService + "ImageStatus", CRI.image(image)))
        } catch {
            throw ContainerRuntimeError(reason: "ErrImageInspect", message: "cannot inspect the image \(image): \(error)")
        }
        if present && policy != "Always" {
            events?.record(reason: "Pulled", message: "Container image \"\(image)\" already present on machine")
            return
        }
        guard policy != "Never" else {
            throw ContainerRuntimeError(reason: "ErrImageNeverPull", message: "the image \(image) is not present and imagePullPolicy is Never")
        }
        events?.record(reason: "Pulling", message: "Pulling image \"\(image)\"")
        let started = ContinuousClock.now
        do {
            _ = try await call(CRI.imageService + "PullImage", CRI.image(image), extra: .seconds(300))
            let elapsed = ContinuousClock.now - started
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            events?.record(reason: "Pulled", message: "Successfully pulled image \"\(image)\" in \(String(format: "%.3f", seconds))s")
        } catch {
            events?.record(warning: true, reason: "Failed", message: "Failed to pull image \"\(image)\": \(error.message)")
            if present { return }  // `Always`, but the registry is away: run what is there
            throw ContainerRuntimeError(reason: "ErrImagePull", message: "cannot pull the image \(image): \(error.message)")
        }
    }

    /// The pod's ready sandbox, made when there is none (sandboxes that are no longer ready go first).
    private func readySandbox(for podID: String, pod: ContainerPod) async throws(ContainerRuntimeError) -> (String, CRI.SandboxConfig) {
        var config = CRI.SandboxConfig(name: pod.name, namespace: pod.namespace, uid: pod.uid, attempt: 0, hostNetwork: pod.hostNetwork,
                                       logDirectory: "\(logRoot)/\(podID)",
                                       labels: [Self.podIDLabel: podID, "io.kubernetes.pod.name": pod.name,
                                                "io.kubernetes.pod.namespace": pod.namespace, "io.kubernetes.pod.uid": pod.uid])
        do {
            let sandboxes = try CRI.sandboxes(try await call(CRI.runtimeService + "ListPodSandbox", CRI.listPodSandbox(labels: [Self.podIDLabel: podID])))
            if let ready = sandboxes.first(where: \.ready) {
                config.attempt = ready.attempt
                return (ready.id, config)
            }
            for stale in sandboxes {
                _ = try? await call(CRI.runtimeService + "StopPodSandbox", CRI.id(stale.id))
                _ = try? await call(CRI.runtimeService + "RemovePodSandbox", CRI.id(stale.id))
            }
            config.attempt = (sandboxes.map(\.attempt).max() ?? -1) + 1
            try? FileManager.default.createDirectory(atPath: config.logDirectory, withIntermediateDirectories: true)
            let id = try CRI.firstString(try await call(CRI.runtimeService + "RunPodSandbox", CRI.runPodSandbox(config), extra: .seconds(60)))
            return (id, config)
        } catch {
            throw ContainerRuntimeError(reason: "CreatePodSandboxError", message: "cannot make the pod's sandbox: \(error)")
        }
    }

    // MARK: state

    /// The CRI ID of a container, from the last listing or by listing the pod's containers.
    private func runtimeID(of id: ContainerID) async -> String? {
        if let found = known.withLock({ $0[id] }) { return found }
        _ = await listContainers(ofPod: id.podUID)
        return known.withLock { $0[id] }
    }

    /// Lists the pod's containers (by label, not every container) and records their IDs;
    /// `nil` without an answer.
    private func listContainers(ofPod podID: String) async -> [ContainerID]? {
        guard let reply = try? await call(CRI.runtimeService + "ListContainers", CRI.listContainers(labels: [Self.podIDLabel: podID])),
              let containers = try? CRI.containers(reply) else { return nil }
        let listed = containers.map { (ContainerID(podUID: podID, name: $0.name, attempt: $0.attempt), $0.id) }
        known.withLock { known in
            known = known.filter { $0.key.podUID != podID }
            for (id, runtimeID) in listed { known[id] = runtimeID }
        }
        return listed.map(\.0).sorted { $0.description < $1.description }
    }

    public func containers(ofPod podID: String) async -> [ContainerID] {
        if let listed = await listContainers(ofPod: podID) { return listed }
        logger.warning("cannot list a pod's containers", metadata: ["pod": "\(podID)"])
        return known.withLock { $0.keys.filter { $0.podUID == podID } }.sorted { $0.description < $1.description }
    }

    /// `<runtime name>://<CRI id>` and the image reference the runtime resolved (its digest).
    public func identity(of id: ContainerID) async -> ContainerIdentity? {
        guard let runtimeID = await runtimeID(of: id),
              let status = try? CRI.ContainerStatus(reply: try await call(CRI.runtimeService + "ContainerStatus", CRI.id(runtimeID))) else { return nil }
        let runtimeName = await versionDescription().split(separator: ":").first.map(String.init) ?? "remote"
        return ContainerIdentity(containerID: "\(runtimeName)://\(status.id.isEmpty ? runtimeID : status.id)", imageID: status.imageRef)
    }

    public func state(of id: ContainerID) async -> ContainerState {
        guard let runtimeID = await runtimeID(of: id) else { return .unknown }
        let status: CRI.ContainerStatus
        do {
            status = try CRI.ContainerStatus(reply: try await call(CRI.runtimeService + "ContainerStatus", CRI.id(runtimeID)))
        } catch let error as GRPCCallError where error.code == GRPCCallError.notFound {
            known.withLock { $0[id] = nil }
            return .unknown
        } catch {
            logger.warning("cannot read a container's status", metadata: ["container": "\(id)", "error": "\(error)"])
            return .unknown
        }
        func date(_ nanoseconds: Int64) -> Date { Date(timeIntervalSince1970: Double(nanoseconds) / 1e9) }
        switch status.state {
        case .running:
            return .running(startedAt: date(status.startedAt))
        case .exited:
            let code = status.exitCode
            // containerd says `Completed` or `Error` like kubelet; anything else is news.
            if !["", "Completed", "Error"].contains(status.reason) { reasons.withLock { $0[id] = status.reason } }
            return .exited(exitCode: code, signal: code > 128 && code < 160 ? code - 128 : nil,
                           startedAt: date(status.startedAt != 0 ? status.startedAt : status.createdAt), finishedAt: date(status.finishedAt))
        case .created, .unknown:
            return .unknown
        }
    }

    public func containers() async -> [ContainerID] {
        do {
            let listed = try CRI.containers(try await call(CRI.runtimeService + "ListContainers", CRI.listContainers(labels: [:])))
            var found: [ContainerID: String] = [:]
            for container in listed {
                guard let podID = container.labels[Self.podIDLabel] else { continue }
                found[ContainerID(podUID: podID, name: container.name, attempt: container.attempt)] = container.id
            }
            known.withLock { $0 = found }
            return found.keys.sorted { $0.description < $1.description }
        } catch {
            // Without an answer, what was last seen (an empty list would look like no pods at all).
            logger.warning("cannot list the runtime's containers", metadata: ["error": "\(error)"])
            return known.withLock { Array($0.keys) }.sorted { $0.description < $1.description }
        }
    }

    public func pods() async -> Set<String> {
        var pods = Set(await containers().map(\.podUID))
        if let reply = try? await call(CRI.runtimeService + "ListPodSandbox", CRI.listPodSandbox(labels: [:])),
           let sandboxes = try? CRI.sandboxes(reply) {
            pods.formUnion(sandboxes.compactMap { $0.labels[Self.podIDLabel] })
        }
        return pods
    }

    public func warnings(of id: ContainerID) async -> [String] { [] }

    public func terminationReason(of id: ContainerID) async -> String? { reasons.withLock { $0[id] } }

    // MARK: stop and remove

    public func stop(_ id: ContainerID, gracePeriod: Duration) async {
        guard let runtimeID = await runtimeID(of: id) else { return }
        let seconds = Int64(gracePeriod.components.seconds) + (gracePeriod.components.attoseconds > 0 ? 1 : 0)
        do {
            _ = try await call(CRI.runtimeService + "StopContainer", CRI.stopContainer(runtimeID, timeoutSeconds: seconds), extra: gracePeriod)
        } catch {
            logger.warning("cannot stop a container", metadata: ["container": "\(id)", "error": "\(error)"])
        }
    }

    public func remove(_ id: ContainerID) async {
        guard let runtimeID = await runtimeID(of: id) else { return }
        do {
            _ = try await call(CRI.runtimeService + "RemoveContainer", CRI.id(runtimeID))
            known.withLock { $0[id] = nil }
            reasons.withLock { $0[id] = nil }
            for suffix in ["", ".1", ".2", ".3", ".4", ".5"] { try? FileManager.default.removeItem(atPath: logPath(of: id) + suffix) }
        } catch {
            logger.warning("cannot remove a container", metadata: ["container": "\(id)", "error": "\(error)"])
        }
    }

    public func removePod(_ podID: String) async {
        guard let reply = try? await call(CRI.runtimeService + "ListPodSandbox", CRI.listPodSandbox(labels: [Self.podIDLabel: podID])),
              let sandboxes = try? CRI.sandboxes(reply) else { return }
        for sandbox in sandboxes {
            do {
                _ = try await call(CRI.runtimeService + "StopPodSandbox", CRI.id(sandbox.id), extra: .seconds(30))
                _ = try await call(CRI.runtimeService + "RemovePodSandbox", CRI.id(sandbox.id))
            } catch {
                logger.warning("cannot remove a pod sandbox", metadata: ["pod": "\(podID)", "error": "\(error)"])
                return
            }
        }
        known.withLock { known in known = known.filter { $0.key.podUID != podID } }
        try? FileManager.default.removeItem(atPath: "\(logRoot)/\(podID)")
    }

    // MARK: exec and logs

    public func exec(in id: ContainerID, command: [String], timeout: Duration) async -> ContainerExecResult {
        guard !command.isEmpty else { return ContainerExecResult(exitCode: nil, output: "no command") }
        guard let runtimeID = await runtimeID(of: id) else { return ContainerExecResult(exitCode: nil, output: "the container is not running") }
        let seconds = max(1, Int64(timeout.components.seconds) + (timeout.components.attoseconds > 0 ? 1 : 0))
        do {
            let reply = try CRI.ExecReply(reply: try await call(CRI.runtimeService + "ExecSync", CRI.execSync(runtimeID, command: command, timeoutSeconds: seconds),
                                                                 extra: timeout))
            let output = String(decoding: (reply.stdout + reply.stderr).prefix(10 * 1024), as: UTF8.self)
            return ContainerExecResult(exitCode: reply.exitCode, output: output)
        } catch let error as GRPCCallError where error.code == GRPCCallError.deadlineExceeded || error.message.contains("timeout") {
            return ContainerExecResult(exitCode: nil, output: error.message, timedOut: true)
        } catch {
            return ContainerExecResult(exitCode: nil, output: "\(error)")
        }
    }

    /// Moves every log over `maxBytes` to `{attempt}.log.1` (older ones move up, `keep` are
    /// kept) and has the runtime reopen it, as kubelet does.
    public func rotateLogs(maxBytes: Int, keep: Int) async {
        for id in await containers() {
            let path = logPath(of: id)
            guard let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? nil, size > maxBytes,
                  let runtimeID = await runtimeID(of: id) else { continue }
            RotatedLog.makeRoom(for: path, keep: keep)
            try? FileManager.default.moveItem(atPath: path, toPath: "\(path).1")
            if case .running = await state(of: id) {
                _ = try? await call(CRI.runtimeService + "ReopenContainerLog", CRI.id(runtimeID))
            }
        }
    }
}
