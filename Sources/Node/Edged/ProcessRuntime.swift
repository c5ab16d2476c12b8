import Foundation
import Synchronization

/// The "raw exec" container runtime: each container is a host process (no image, no
/// namespaces), run under `container-shim`, which gives it a session of its own, appends its
/// output to the container's log file, passes on SIGTERM, and records how it ended in a file,
/// so that containers keep running while edgecore is down and an edgecore started later finds
/// them again (by PID and the kernel's start time of that PID, never by name).
///
/// State lives under `root/{container id}/`: `state.json` (PID, start ticks, times), `exit`
/// (written by the shim) and `output.log` (rotated by ``rotateLogs(maxBytes:keep:)``).
///
/// Mounts: the shim gives a container with volumes a private mount namespace and binds each
/// volume at its mount path (this needs root; missing mount points are created on the host as
/// empty directories or files, since the container shares the host's file system otherwise).
/// Limits: memory and CPU go to cgroup v1 directories `{cgroupRoot}/{memory,cpu}/edged/{id}`,
/// which the shim joins; where they cannot be written the container runs without them and
/// ``warnings(of:)`` says why.
public final class ProcessRuntime: ContainerRuntime {
    /// Containers are host processes: a pod's IP is the node's.
    public var podsShareHostNetwork: Bool { true }

    public func versionDescription() async -> String { "process://container-shim" }

    /// `process://<pod>_<name>_<attempt>`; no image, so an empty `imageID`.
    public func identity(of id: ContainerID) async -> ContainerIdentity? {
        load(id).map { _ in ContainerIdentity(containerID: "process://\(id)", imageID: "") }
    }

    public let root: String
    public let shimPath: String
    /// Where the cgroup v1 hierarchies are mounted (`nil`: no limits are applied).
    public let cgroupRoot: String?

    private struct Record: Codable {
        var pid: Int32
        var startTicks: UInt64
        var startedAt: Date
        /// Set when the runtime sent SIGKILL (the shim dies too, so no exit file).
        var killedAt: Date?
        /// What could not be done as asked.
        var warnings: [String]?
        /// The cgroup directories made for it (removed with it).
        var cgroups: [String]?
        /// Where it runs (exec probes run there too).
        var workingDirectory: String?
    }

    private let lock = Mutex(())

    /// - Parameters:
    ///   - root: the runtime's state directory (created when missing).
    ///   - shimPath: `container-shim`; by default the one beside this executable.
    ///   - cgroupRoot: the cgroup v1 mount point, `/sys/fs/cgroup` by default; `nil` applies no limits.
    public init(root: String, shimPath: String? = nil, cgroupRoot: String? = "/sys/fs/cgroup") throws {
        self.root = root
        self.cgroupRoot = cgroupRoot
        self.shimPath = shimPath ?? Self.defaultShimPath()
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        guard FileManager.default.isExecutableFile(atPath: self.shimPath) else {
            throw ContainerRuntimeError(reason: "RuntimeUnavailable", message: "container-shim is not at \(self.shimPath)")
        }
    }

    /// `container-shim` beside the running executable (edgecore, or the test bundle).
    public static func defaultShimPath() -> String {
        let executable = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        var directory = executable.deletingLastPathComponent()
        // A test bundle runs from .build/…/debug/X.xctest (a file on Linux).
        if directory.lastPathComponent.hasSuffix(".xctest") { directory = directory.deletingLastPathComponent() }
        return directory.appendingPathComponent("container-shim").path
    }

    private func directory(of id: ContainerID) -> String { root + "/" + id.description }
    public func logPath(of id: ContainerID) -> String { directory(of: id) + "/output.log" }

    @discardableResult
    public func start(_ launch: ContainerLaunch) throws(ContainerRuntimeError) -> ContainerID {
        let commandLine = launch.command + launch.args
        guard let program = commandLine.first, !program.isEmpty else {
            throw ContainerRuntimeError(reason: "CreateContainerConfigError", message: "the container has no command (the process runtime runs no images)")
        }
        if !launch.mounts.isEmpty, geteuid() != 0 {
            throw ContainerRuntimeError(reason: "RunContainerError", message: "volume mounts need root: the process runtime binds them in a mount namespace of the container's own")
        }
        let id = launch.id
        let directory = directory(of: id)
        let process = Process()
        var warnings: [String] = []
        var cgroups: [String] = []
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            try? FileManager.default.removeItem(atPath: directory + "/exit")
            try? FileManager.default.removeItem(atPath: directory + "/ready")
            (cgroups, warnings) = makeCgroups(for: id, resources: launch.resources)
            process.executableURL = URL(fileURLWithPath: shimPath)
            var arguments = ["--exit-file", directory + "/exit", "--ready-file", directory + "/ready", "--log", logPath(of: id)]
            if let workingDirectory = launch.workingDirectory { arguments += ["--cwd", workingDirectory] }
            for cgroup in cgroups { arguments += ["--cgroup", cgroup] }
            for mount in launch.mounts { arguments += ["--mount", mount.readOnly ? "ro" : "rw", mount.source, mount.destination] }
            process.arguments = arguments + ["--"] + commandLine
            process.environment = launch.environment
            process.standardInput = FileHandle.nullDevice
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
        } catch {
            removeCgroups(cgroups)
            throw ContainerRuntimeError(reason: "RunContainerError", message: "cannot start \(program): \(error)")
        }
        let pid = process.processIdentifier
        let record = Record(pid: pid, startTicks: Self.startTicks(of: pid) ?? 0, startedAt: Date(), killedAt: nil,
                            warnings: warnings.isEmpty ? nil : warnings, cgroups: cgroups.isEmpty ? nil : cgroups,
                            workingDirectory: launch.workingDirectory)
        do {
            try save(record, for: id)
        } catch {
            kill(-pid, SIGKILL)
            throw ContainerRuntimeError(reason: "RunContainerError", message: "cannot record the container's state: \(error)")
        }
        return id
    }

    public func state(of id: ContainerID) -> ContainerState {
        guard let record = load(id) else { return .unknown }
        let exitFile = directory(of: id) + "/exit"
        func ended() -> ContainerState? {
            guard let ending = Self.readExit(exitFile) else { return nil }
            let finished = (try? FileManager.default.attributesOfItem(atPath: exitFile)[.modificationDate] as? Date) ?? Date()
            return .exited(exitCode: ending.code, signal: ending.signal, startedAt: record.startedAt, finishedAt: finished)
        }
        if let ended = ended() { return ended }
        if isAlive(record) { return .running(startedAt: record.startedAt) }
        // The shim writes the file and then exits: it may have done both since the first look.
        if let ended = ended() { return ended }
        // Gone without an exit file: killed with its shim (by us, or by someone else).
        return .exited(exitCode: 128 + SIGKILL, signal: SIGKILL, startedAt: record.startedAt, finishedAt: record.killedAt ?? Date())
    }

    public func stop(_ id: ContainerID, gracePeriod: Duration) async {
        guard var record = load(id), isAlive(record) else { return }
        kill(record.pid, SIGTERM)  // the shim passes it on to the container
        let deadline = ContinuousClock.now + gracePeriod
        while isAlive(record), ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(20))
        }
        guard isAlive(record) else { return }
        record.killedAt = Date()
        try? save(record, for: id)
        kill(-record.pid, SIGKILL)  // the shim's whole process group
        while isAlive(record) { try? await Task.sleep(for: .milliseconds(5)) }
    }

    public func remove(_ id: ContainerID) {
        let record = load(id)
        if let record, isAlive(record) {
            kill(-record.pid, SIGKILL)
            for _ in 0..<200 where isAlive(record) { usleep(5_000) }
        }
        removeCgroups(record?.cgroups ?? [])
        try? FileManager.default.removeItem(atPath: directory(of: id))
    }

    public func warnings(of id: ContainerID) -> [String] { load(id)?.warnings ?? [] }

    public func exec(in id: ContainerID, command: [String], timeout: Duration) async -> ContainerExecResult {
        guard let record = load(id), isAlive(record) else { return ContainerExecResult(exitCode: nil, output: "the container is not running") }
        guard !command.isEmpty else { return ContainerExecResult(exitCode: nil, output: "no command") }
        // Until the shim has its mounts in place, entering it would show the host's.
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: timeout)
        while !FileManager.default.fileExists(atPath: directory(of: id) + "/ready") {
            guard clock.now < deadline, isAlive(record) else {
                return ContainerExecResult(exitCode: nil, output: isAlive(record) ? "the container is still starting" : "the container is not running",
                                           timedOut: isAlive(record))
            }
            try? await Task.sleep(for: .milliseconds(5))
        }
        // The shim's environment is the container's (it passes it on unchanged).
        let environment = Self.environment(of: record.pid)
        var arguments = ["--enter", String(record.pid)]
        if let cwd = record.workingDirectory { arguments += ["--cwd", cwd] }
        return await HostCommand.run(shimPath, arguments: arguments + ["--"] + command, environment: environment,
                                     timeout: max(.milliseconds(1), clock.now.duration(to: deadline)))
    }

    public func startSession(in id: ContainerID, command: [String], terminal: Bool) async throws(ContainerRuntimeError) -> InteractiveProcess {
        guard let record = load(id), isAlive(record), FileManager.default.fileExists(atPath: directory(of: id) + "/ready") else {
            throw ContainerRuntimeError(reason: "ContainerNotRunning", message: "the container is not running")
        }
        guard !command.isEmpty else { throw ContainerRuntimeError(reason: "InvalidCommand", message: "no command") }
        var arguments = [shimPath, "--enter", String(record.pid)]
        if let cwd = record.workingDirectory { arguments += ["--cwd", cwd] }
        do {
            // The shim's environment is the container's (it passes it on unchanged).
            return try await InteractiveProcess.spawn(arguments + ["--"] + command, environment: Self.environment(of: record.pid), terminal: terminal)
        } catch {
            throw ContainerRuntimeError(reason: "RunContainerError", message: "\(error)")
        }
    }

    // MARK: cgroups

    /// Memory and CPU cgroups for the container's limits, and what could not be applied.
    private func makeCgroups(for id: ContainerID, resources: ContainerResources) -> (directories: [String], warnings: [String]) {
        guard !resources.isEmpty else { return ([], []) }
        guard let cgroupRoot else { return ([], ["resource limits are not enforced: cgroups are turned off"]) }
        var settings: [(controller: String, file: String, value: String, what: String)] = []
        if let memory = resources.memoryLimitBytes { settings.append(("memory", "memory.limit_in_bytes", String(memory), "memory limit")) }
        if let cpu = resources.cpuLimitMillicores {
            settings.append(("cpu", "cpu.cfs_period_us", "100000", "CPU limit"))
            settings.append(("cpu", "cpu.cfs_quota_us", String(max(1_000, cpu * 100)), "CPU limit"))
        }
        if let request = resources.cpuRequestMillicores { settings.append(("cpu", "cpu.shares", String(max(2, request * 1024 / 1000)), "CPU request")) }
        var directories: [String] = []
        var warnings: [String] = []
        for controller in ["memory", "cpu"] {
            let wanted = settings.filter { $0.controller == controller }
            guard !wanted.isEmpty else { continue }
            let directory = "\(cgroupRoot)/\(controller)/edged/\(id)"
            do {
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
                for setting in wanted { try Data(setting.value.utf8).write(to: URL(fileURLWithPath: directory + "/" + setting.file)) }
                directories.append(directory)
            } catch {
                try? FileManager.default.removeItem(atPath: directory)
                let what = Set(wanted.map(\.what)).sorted().joined(separator: " and ")
                warnings.append("\(what) not enforced: cannot write the cgroup \(directory): \(Self.reason(error))")
            }
        }
        return (directories, warnings)
    }

    private func removeCgroups(_ directories: [String]) {
        // A cgroup directory goes with rmdir once empty (its files are not real files).
        for directory in directories { rmdir(directory) }
    }

    private static func reason(_ error: any Error) -> String {
        if let underlying = (error as NSError).userInfo[NSUnderlyingErrorKey] as? NSError, underlying.domain == NSPOSIXErrorDomain {
            return String(cString: strerror(Int32(underlying.code)))
        }
        return (error as NSError).localizedDescription
    }

    private static func environment(of pid: Int32) -> [String: String] {
        guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/environ") else { return [:] }
        var environment: [String: String] = [:]
        for entry in data.split(separator: 0) {
            let text = String(decoding: entry, as: UTF8.self)
            guard let equals = text.firstIndex(of: "=") else { continue }
            environment[String(text[..<equals])] = String(text[text.index(after: equals)...])
        }
        return environment
    }

    public func containers() -> [ContainerID] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []
        return names.compactMap { name in
            let parts = name.split(separator: "_")
            guard parts.count >= 3, let attempt = Int(parts[parts.count - 1]),
                  FileManager.default.fileExists(atPath: root + "/" + name + "/state.json") else { return nil }
            return ContainerID(podUID: parts[0..<(parts.count - 2)].joined(separator: "_"), name: String(parts[parts.count - 2]), attempt: attempt)
        }.sorted { $0.description < $1.description }
    }

    /// Renames every log over `maxBytes` to `output.log.1` (older ones move up, `keep` are
    /// kept) and puts an empty log in its place; the shim writes to the new file from its next
    /// record (nothing is lost in between: it goes to the renamed file).
    public func rotateLogs(maxBytes: Int, keep: Int) {
        for id in containers() {
            let path = logPath(of: id)
            guard let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? nil, size > maxBytes else { continue }
            RotatedLog.makeRoom(for: path, keep: keep)
            guard rename(path, "\(path).1") == 0 else { continue }
            let fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o640)
            if fd >= 0 { close(fd) }
        }
    }

    // MARK: state

    private func save(_ record: Record, for id: ContainerID) throws {
        let data = try JSONEncoder().encode(record)
        try lock.withLock { _ in try data.write(to: URL(fileURLWithPath: directory(of: id) + "/state.json"), options: .atomic) }
    }

    private func load(_ id: ContainerID) -> Record? {
        lock.withLock { _ in
            FileManager.default.contents(atPath: directory(of: id) + "/state.json").flatMap { try? JSONDecoder().decode(Record.self, from: $0) }
        }
    }

    /// Whether the recorded process is still the one started (same PID and start time) and
    /// has not ended (a zombie has).
    private func isAlive(_ record: Record) -> Bool {
        guard let (ticks, state) = Self.stat(of: record.pid) else { return false }
        return ticks == record.startTicks && state != "Z" && state != "X"
    }

    private static func startTicks(of pid: Int32) -> UInt64? { stat(of: pid)?.ticks }

    /// Field 22 (start time in clock ticks) and field 3 (state) of `/proc/PID/stat`.
    private static func stat(of pid: Int32) -> (ticks: UInt64, state: String)? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = text.lastIndex(of: ")") else { return nil }
        let fields = text[text.index(after: close)...].split(separator: " ")
        // After the command: state is field 3, start time field 22.
        guard fields.count > 19, let ticks = UInt64(fields[19]) else { return nil }
        return (ticks, String(fields[0]))
    }

    private static func readExit(_ path: String) -> (code: Int32, signal: Int32?)? {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
        let parts = text.split(whereSeparator: \.isWhitespace)
        guard parts.count == 2, let number = Int32(parts[1]) else { return nil }
        return parts[0] == "signal" ? (128 + number, number) : (number, nil)
    }
}
