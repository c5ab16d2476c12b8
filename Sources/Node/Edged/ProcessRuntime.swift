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
public final class ProcessRuntime: ContainerRuntime {
    public let root: String
    public let shimPath: String

    private struct Record: Codable {
        var pid: Int32
        var startTicks: UInt64
        var startedAt: Date
        /// Set when the runtime sent SIGKILL (the shim dies too, so no exit file).
        var killedAt: Date?
    }

    private let lock = Mutex(())

    /// - Parameters:
    ///   - root: the runtime's state directory (created when missing).
    ///   - shimPath: `container-shim`; by default the one beside this executable.
    public init(root: String, shimPath: String? = nil) throws {
        self.root = root
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

    public func start(_ launch: ContainerLaunch) throws(ContainerRuntimeError) -> ContainerID {
        guard let program = launch.command.first, !program.isEmpty else {
            throw ContainerRuntimeError(reason: "CreateContainerConfigError", message: "the container has no command (the process runtime runs no images)")
        }
        let id = launch.id
        let directory = directory(of: id)
        let process = Process()
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            try? FileManager.default.removeItem(atPath: directory + "/exit")
            process.executableURL = URL(fileURLWithPath: shimPath)
            var arguments = ["--exit-file", directory + "/exit", "--log", logPath(of: id)]
            if let workingDirectory = launch.workingDirectory { arguments += ["--cwd", workingDirectory] }
            process.arguments = arguments + ["--"] + launch.command
            process.environment = launch.environment
            process.standardInput = FileHandle.nullDevice
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
        } catch {
            throw ContainerRuntimeError(reason: "RunContainerError", message: "cannot start \(program): \(error)")
        }
        let pid = process.processIdentifier
        let record = Record(pid: pid, startTicks: Self.startTicks(of: pid) ?? 0, startedAt: Date(), killedAt: nil)
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
        if let ending = Self.readExit(directory(of: id) + "/exit") {
            let finished = (try? FileManager.default.attributesOfItem(atPath: directory(of: id) + "/exit")[.modificationDate] as? Date) ?? Date()
            return .exited(exitCode: ending.code, signal: ending.signal, startedAt: record.startedAt, finishedAt: finished)
        }
        if isAlive(record) { return .running(startedAt: record.startedAt) }
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
        if let record = load(id), isAlive(record) { kill(-record.pid, SIGKILL) }
        try? FileManager.default.removeItem(atPath: directory(of: id))
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

    /// Copies every log over `maxBytes` to `output.log.1` (older copies move up, `keep` are
    /// kept) and truncates it; the container goes on appending.
    public func rotateLogs(maxBytes: Int, keep: Int) {
        for id in containers() {
            let path = logPath(of: id)
            guard let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? nil, size > maxBytes else { continue }
            for index in stride(from: keep - 1, through: 1, by: -1) {
                try? FileManager.default.removeItem(atPath: "\(path).\(index + 1)")
                try? FileManager.default.moveItem(atPath: "\(path).\(index)", toPath: "\(path).\(index + 1)")
            }
            try? FileManager.default.removeItem(atPath: "\(path).1")
            try? FileManager.default.copyItem(atPath: path, toPath: "\(path).1")
            truncate(path, 0)
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
