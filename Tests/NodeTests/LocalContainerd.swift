import Foundation
import Node
import TestSupport
import Testing

/// A containerd of the test's own: its own root, state and socket under a temporary directory,
/// the CRI plugin with runc, a loopback-only CNI network (bridged pods get a network namespace
/// with nothing but `lo`), and the busybox image built by `tools/containerd/busybox-image.sh`
/// imported as ``image`` (also the sandbox image). ``stop()`` removes every pod sandbox, kills
/// containerd and the shims it started, and removes the directory.
final class LocalContainerd: Sendable {
    static let image = "localhost/edged-busybox:1"

    let directory: String
    var socketPath: String { directory + "/containerd.sock" }
    var endpoint: String { "unix://" + socketPath }
    private let process: BackgroundProcess

    /// The package's root (where `tools/` is).
    static var packageRoot: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    }

    init() async throws {
        for tool in ["/usr/bin/containerd", "/usr/sbin/runc", "/usr/bin/ctr", "/bin/busybox"] where !FileManager.default.isExecutableFile(atPath: tool) {
            throw LocalContainerdError("\(tool) is missing: `make deps` installs containerd, runc and busybox-static")
        }
        // Short: the socket path must fit in sockaddr_un.
        directory = "/tmp/ctd-" + UUID().uuidString.prefix(8).lowercased()
        try FileManager.default.createDirectory(atPath: directory + "/cni", withIntermediateDirectories: true)
        let config = """
            version = 2
            root = "\(directory)/root"
            state = "\(directory)/state"
            [grpc]
              address = "\(directory)/containerd.sock"
            [ttrpc]
              address = "\(directory)/containerd.sock.ttrpc"
            [debug]
              level = "warn"
            [plugins."io.containerd.internal.v1.opt"]
              path = "\(directory)/opt"
            [plugins."io.containerd.grpc.v1.cri"]
              sandbox_image = "\(Self.image)"
              restrict_oom_score_adj = true
              [plugins."io.containerd.grpc.v1.cri".containerd]
                snapshotter = "overlayfs"
                default_runtime_name = "runc"
                [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
                  runtime_type = "io.containerd.runc.v2"
              [plugins."io.containerd.grpc.v1.cri".cni]
                bin_dir = "/usr/lib/cni"
                conf_dir = "\(directory)/cni"
            """
        try config.write(toFile: directory + "/config.toml", atomically: true, encoding: .utf8)
        try #"{"cniVersion":"0.4.0","name":"edged-loopback","plugins":[{"type":"loopback"}]}"#
            .write(toFile: directory + "/cni/10-loopback.conflist", atomically: true, encoding: .utf8)
        process = try BackgroundProcess("/usr/bin/containerd", ["--config", directory + "/config.toml"], outputFile: directory + "/containerd.log")
        do {
            let runtime = try CRIRuntime(endpoint: "unix://" + directory + "/containerd.sock", logRoot: directory + "/logs", callTimeout: .seconds(2))
            guard await eventually(timeout: .seconds(30), { (try? await runtime.version()) != nil }) else {
                throw LocalContainerdError("containerd did not answer on its socket: \(log)")
            }
            let built = try await run("/bin/sh", [Self.packageRoot + "/tools/containerd/busybox-image.sh", directory + "/busybox.tar", Self.image])
            guard built.status == 0 else { throw LocalContainerdError("cannot build the image: \(built.output)") }
            let imported = try await run("/usr/bin/ctr", ["--address", socketPath, "-n", "k8s.io", "images", "import", directory + "/busybox.tar"])
            guard imported.status == 0 else { throw LocalContainerdError("cannot import the image: \(imported.output)") }
        } catch {
            await stop()
            throw error
        }
    }

    /// containerd's own log.
    var log: String { (try? String(contentsOfFile: directory + "/containerd.log", encoding: .utf8)) ?? "" }

    /// Removes every sandbox (and with it every container), then ends containerd and its shims.
    func stop() async {
        if process.isRunning, let runtime = try? CRIRuntime(endpoint: endpoint, logRoot: directory + "/logs", callTimeout: .seconds(30)) {
            for pod in await runtime.pods() {
                for id in await runtime.containers() where id.podUID == pod { await runtime.stop(id, gracePeriod: .zero) }
                await runtime.removePod(pod)
            }
        }
        process.stop()
        // Shims outlive containerd; each was started with this directory in its arguments.
        for pid in Self.processes(mentioning: directory) { kill(pid, SIGKILL) }
        _ = try? await run("/bin/sh", ["-c", "grep -o ' \(directory)[^ ]*' /proc/mounts | sort -r | xargs -r -n1 umount -l"])
        removeTemporaryDirectory(directory)
    }

    private static func processes(mentioning text: String) -> [Int32] {
        let pids = (try? FileManager.default.contentsOfDirectory(atPath: "/proc"))?.compactMap(Int32.init) ?? []
        return pids.filter { pid in
            guard pid != getpid(), let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return false }
            return String(decoding: data, as: UTF8.self).contains(text)
        }
    }

    /// Runs a command to its end; its exit status and output.
    private func run(_ executable: String, _ arguments: [String]) async throws -> (status: Int32, output: String) {
        let output = directory + "/command-\(UUID().uuidString.prefix(8)).out"
        let command = try BackgroundProcess(executable, arguments, outputFile: output)
        let deadline = ContinuousClock.now + .seconds(60)
        while command.isRunning, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
        let status = await command.signal(0, waitingUpTo: .zero) ?? -1
        return (status, (try? String(contentsOfFile: output, encoding: .utf8)) ?? "")
    }
}

struct LocalContainerdError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
