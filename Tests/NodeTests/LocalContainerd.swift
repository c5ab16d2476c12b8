import Foundation
import Node
import TestSupport
import Testing

/// A containerd of the test's own, configured by `tools/containerd/local-containerd.sh`: its own
/// root, state and socket under a temporary directory, the CRI plugin with runc, a loopback-only
/// CNI network, and the busybox image built by `tools/containerd/busybox-image.sh` imported as
/// ``image`` (also the sandbox image). ``stop()`` removes every pod sandbox, kills
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
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let configured = try runProcess("/bin/sh", [Self.packageRoot + "/tools/containerd/local-containerd.sh", "config", directory])
        guard configured.status == 0 else { throw LocalContainerdError("cannot write containerd's configuration: \(configured.output)") }
        process = try BackgroundProcess("/usr/bin/containerd", ["--config", directory + "/config.toml"], outputFile: directory + "/containerd.log")
        do {
            let runtime = try CRIRuntime(endpoint: "unix://" + directory + "/containerd.sock", logRoot: directory + "/logs", callTimeout: .seconds(2))
            guard await eventually(timeout: .seconds(30), { (try? await runtime.version()) != nil }) else {
                throw LocalContainerdError("containerd did not answer on its socket: \(log)")
            }
            let built = try await runProcessOffPool("/bin/sh", [Self.packageRoot + "/tools/containerd/busybox-image.sh", directory + "/busybox.tar", Self.image])
            guard built.status == 0 else { throw LocalContainerdError("cannot build the image: \(built.output)") }
            let imported = try await runProcessOffPool("/usr/bin/ctr", ["--address", socketPath, "-n", "k8s.io", "images", "import", directory + "/busybox.tar"])
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
                for id in await runtime.containers(ofPod: pod) { await runtime.stop(id, gracePeriod: .zero) }
                await runtime.removePod(pod)
            }
        }
        process.stop()
        // Shims outlive containerd: the script ends them, unmounts what is left and removes the directory.
        _ = try? await runProcessOffPool("/bin/sh", [Self.packageRoot + "/tools/containerd/local-containerd.sh", "stop", directory])
        removeTemporaryDirectory(directory)
    }
}

struct LocalContainerdError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
