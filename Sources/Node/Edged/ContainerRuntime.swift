import Foundation

/// One container to start: what to run, with what, and where its output goes.
public struct ContainerLaunch: Sendable, Equatable {
    public var id: ContainerID
    /// The container's `command` (a runtime with images runs the image's entrypoint when empty).
    public var command: [String]
    /// The container's `args`. ``ProcessRuntime`` runs `command + args` as one command line.
    public var args: [String]
    public var environment: [String: String]
    public var workingDirectory: String?
    /// Host paths the container sees at other paths (its volumes).
    public var mounts: [ContainerMount]
    /// Limits to enforce where the host lets the runtime (cgroups).
    public var resources: ContainerResources
    /// The image (ignored by ``ProcessRuntime``) and when to pull it (`Always`, `IfNotPresent`, `Never`).
    public var image: String
    public var imagePullPolicy: String
    /// The pod it belongs to, for runtimes that run pods as a whole (a CRI sandbox).
    public var pod: ContainerPod?
    /// Where the runtime reports what it did for the container (`Pulling`, `Pulled`).
    public var events: ContainerEventSink?

    public init(id: ContainerID, command: [String], args: [String] = [], environment: [String: String] = [:], workingDirectory: String? = nil,
                mounts: [ContainerMount] = [], resources: ContainerResources = ContainerResources(),
                image: String = "", imagePullPolicy: String = "IfNotPresent", pod: ContainerPod? = nil) {
        self.id = id
        self.command = command
        self.args = args
        self.environment = environment
        self.workingDirectory = workingDirectory
        self.mounts = mounts
        self.resources = resources
        self.image = image
        self.imagePullPolicy = imagePullPolicy
        self.pod = pod
    }
}

/// Where a runtime reports kubelet's events about a container it starts. Not part of a
/// launch's equality: it says where to report, not what to run.
public struct ContainerEventSink: Sendable, Equatable {
    private let report: @Sendable (_ warning: Bool, _ reason: String, _ message: String) -> Void

    public init(_ report: @escaping @Sendable (_ warning: Bool, _ reason: String, _ message: String) -> Void) {
        self.report = report
    }

    /// Reports a `Normal` event (or a `Warning` one).
    public func record(warning: Bool = false, reason: String, message: String) { report(warning, reason, message) }

    public static func == (lhs: ContainerEventSink, rhs: ContainerEventSink) -> Bool { true }
}

/// The pod a container belongs to, as a runtime with pod sandboxes needs it.
public struct ContainerPod: Sendable, Equatable {
    public var name: String
    public var namespace: String
    public var uid: String
    /// Whether the pod uses the host's network (`spec.hostNetwork`).
    public var hostNetwork: Bool

    public init(name: String, namespace: String, uid: String, hostNetwork: Bool) {
        self.name = name
        self.namespace = namespace
        self.uid = uid
        self.hostNetwork = hostNetwork
    }
}

/// A host file or directory that a container sees at `destination`.
public struct ContainerMount: Sendable, Equatable, Codable {
    public var source: String
    public var destination: String
    public var readOnly: Bool

    public init(source: String, destination: String, readOnly: Bool) {
        self.source = source
        self.destination = destination
        self.readOnly = readOnly
    }
}

/// A container's CPU and memory, from its `resources` (limits cap, requests weigh).
public struct ContainerResources: Sendable, Equatable, Codable {
    public var memoryLimitBytes: Int64?
    /// CPU limit in thousandths of a core (`500m` is 500).
    public var cpuLimitMillicores: Int64?
    /// CPU request in thousandths of a core: the container's share under contention.
    public var cpuRequestMillicores: Int64?

    public init(memoryLimitBytes: Int64? = nil, cpuLimitMillicores: Int64? = nil, cpuRequestMillicores: Int64? = nil) {
        self.memoryLimitBytes = memoryLimitBytes
        self.cpuLimitMillicores = cpuLimitMillicores
        self.cpuRequestMillicores = cpuRequestMillicores
    }

    /// Whether anything is asked for.
    public var isEmpty: Bool { memoryLimitBytes == nil && cpuLimitMillicores == nil && cpuRequestMillicores == nil }
}

/// A container instance: the pod's UID, the container's name and which start this is.
public struct ContainerID: Sendable, Hashable, Codable, CustomStringConvertible {
    public var podUID: String
    public var name: String
    /// 0 for the first start, then one more per restart.
    public var attempt: Int

    public init(podUID: String, name: String, attempt: Int) {
        self.podUID = podUID
        self.name = name
        self.attempt = attempt
    }

    /// `{podUID}_{name}_{attempt}`, the directory name of its state.
    public var description: String { "\(podUID)_\(name)_\(attempt)" }
}

/// Where a container is now.
public enum ContainerState: Sendable, Equatable {
    case running(startedAt: Date)
    /// `exitCode` as the shell reports it (128 + signal for a signal); `signal` when one ended it.
    case exited(exitCode: Int32, signal: Int32?, startedAt: Date, finishedAt: Date)
    /// The runtime has no such container.
    case unknown
}

/// The seam between Edged and what runs containers. ``ProcessRuntime`` runs them as host
/// processes; ``CRIRuntime`` runs them in containerd (or any CRI runtime) over gRPC.
/// Containers outlive edgecore: a runtime opened again finds the ones it started.
public protocol ContainerRuntime: Sendable {
    /// Starts the container; it is running (or already ended) when this returns.
    func start(_ launch: ContainerLaunch) async throws(ContainerRuntimeError) -> ContainerID
    func state(of id: ContainerID) async -> ContainerState
    /// SIGTERM, then SIGKILL once `gracePeriod` has passed; returns once it has ended.
    func stop(_ id: ContainerID, gracePeriod: Duration) async
    /// Forgets an ended container (its state and logs go).
    func remove(_ id: ContainerID) async
    /// Every container the runtime knows, running or ended.
    func containers() async -> [ContainerID]
    /// The containers of one pod (by pod ID).
    func containers(ofPod podID: String) async -> [ContainerID]
    /// The pods the runtime holds anything for (containers, or a sandbox), by pod ID.
    func pods() async -> Set<String>
    /// Removes what the runtime keeps for a pod beyond its containers (a CRI sandbox), once
    /// its containers are removed.
    func removePod(_ podID: String) async
    /// The file its output goes to.
    func logPath(of id: ContainerID) -> String
    /// What the runtime could not do as asked for this container (limits it could not
    /// enforce, say), for the pod's status.
    func warnings(of id: ContainerID) async -> [String]
    /// Runs `command` beside the running container (its environment, working directory and
    /// mounts), for exec probes; ends it after `timeout`.
    func exec(in id: ContainerID, command: [String], timeout: Duration) async -> ContainerExecResult
    /// Starts `command` beside the running container (its environment, working directory and
    /// mounts) with its standard streams, or a terminal, joined to the caller: exec sessions.
    func startSession(in id: ContainerID, command: [String], terminal: Bool) async throws(ContainerRuntimeError) -> InteractiveProcess
    /// Why an ended container ended, when the runtime knows more than its exit code
    /// (`OOMKilled`); read after ``state(of:)`` reported it ended.
    func terminationReason(of id: ContainerID) async -> String?
    /// Moves every log over `maxBytes` aside (`keep` old files are kept per container).
    func rotateLogs(maxBytes: Int, keep: Int) async
    /// Whether every pod's containers use the host's network (no pod network of their own), so
    /// that a pod's IP is the node's.
    var podsShareHostNetwork: Bool { get }
    /// `name://version` of the runtime, as a Node's `nodeInfo.containerRuntimeVersion` says it.
    func versionDescription() async -> String
    /// How the container's status names it and its image, as kubelet reports them; `nil` when
    /// the runtime does not know the container.
    func identity(of id: ContainerID) async -> ContainerIdentity?
    /// The images the runtime holds, as a Node's `status.images` lists them (none for a
    /// runtime that runs no images).
    func images() async -> [NodeImage]
}

/// An image on the node: its names (digests and tags) and size, for `status.images` (which
/// kube-scheduler's ImageLocality scores).
public struct NodeImage: Sendable, Equatable {
    public var names: [String]
    public var sizeBytes: Int64

    public init(names: [String], sizeBytes: Int64) {
        self.names = names
        self.sizeBytes = sizeBytes
    }
}

/// A container's `containerID` (`<runtime>://<id>`) and `imageID` (the image's digest
/// reference, empty when the runtime runs no image), the two fields kubelet adds to a
/// container's status.
public struct ContainerIdentity: Sendable, Equatable {
    public var containerID: String
    public var imageID: String

    public init(containerID: String, imageID: String) {
        self.containerID = containerID
        self.imageID = imageID
    }
}

extension ContainerRuntime {
    public func containers(ofPod podID: String) async -> [ContainerID] { await containers().filter { $0.podUID == podID } }
    public func pods() async -> Set<String> { Set(await containers().map(\.podUID)) }
    public func removePod(_ podID: String) async {}
    public func terminationReason(of id: ContainerID) async -> String? { nil }
    public func images() async -> [NodeImage] { [] }
    public func startSession(in id: ContainerID, command: [String], terminal: Bool) async throws(ContainerRuntimeError) -> InteractiveProcess {
        throw ContainerRuntimeError(reason: "NotSupported", message: "this container runtime does not run exec sessions yet")
    }
}

/// How a command run by ``ContainerRuntime/exec(in:command:timeout:)`` ended.
public struct ContainerExecResult: Sendable, Equatable {
    /// The exit code (128 + signal when a signal ended it); `nil` when it could not run or timed out.
    public var exitCode: Int32?
    /// The first bytes of its output.
    public var output: String
    public var timedOut: Bool

    public init(exitCode: Int32?, output: String, timedOut: Bool = false) {
        self.exitCode = exitCode
        self.output = output
        self.timedOut = timedOut
    }
}

/// Why a container could not be started.
public struct ContainerRuntimeError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Kubernetes' short reason (`RunContainerError`, `CreateContainerConfigError`).
    public var reason: String
    public var message: String

    public init(reason: String, message: String) {
        self.reason = reason
        self.message = message
    }

    public var description: String { "\(reason): \(message)" }
}

/// Rotated container logs: `{path}.1` is the newest old one, `{path}.{keep}` the oldest.
enum RotatedLog {
    /// Moves `{path}.N` up to `{path}.N+1` (dropping what falls past `keep`), so that
    /// `{path}.1` is free for the log being rotated.
    static func makeRoom(for path: String, keep: Int) {
        for index in stride(from: keep - 1, through: 1, by: -1) {
            try? FileManager.default.removeItem(atPath: "\(path).\(index + 1)")
            try? FileManager.default.moveItem(atPath: "\(path).\(index)", toPath: "\(path).\(index + 1)")
        }
        try? FileManager.default.removeItem(atPath: "\(path).1")
    }
}
