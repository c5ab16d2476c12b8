import Foundation
import Synchronization

/// Runs a host program to its end without blocking a thread of the cooperative pool: the
/// process's termination handler resumes the caller, and a timer ends it (SIGKILL) when it
/// runs longer than allowed. Its output (stdout and stderr together) is kept up to a bound.
enum HostCommand {
    /// The most output kept (kubelet keeps 10 KiB of a probe's).
    static let maxOutputBytes = 10 * 1024

    static func run(_ executable: String, arguments: [String], environment: [String: String], timeout: Duration) async -> ContainerExecResult {
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("edged-exec-\(UUID().uuidString)")
        guard FileManager.default.createFile(atPath: output.path, contents: nil), let handle = try? FileHandle(forWritingTo: output) else {
            return ContainerExecResult(exitCode: nil, output: "cannot create a file for the command's output")
        }
        defer {
            try? handle.close()
            try? FileManager.default.removeItem(at: output)
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.environment = environment
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = handle
        process.standardError = handle
        let watch = Watch()
        // The time limit is a child task beside the wait: it ends the command (SIGKILL) unless
        // the command ended first, and is cancelled once it has.
        let status: Int32? = await withTaskGroup(of: Void.self) { group in
            let status: Int32? = await withCheckedContinuation { (continuation: CheckedContinuation<Int32?, Never>) in
                process.terminationHandler = { ended in
                    // Told here, on the thread that saw it end: a limit that runs out while the
                    // waiting task is not yet resumed must not count a finished command as killed.
                    watch.finished.store(true, ordering: .releasing)
                    continuation.resume(returning: ended.terminationReason == .uncaughtSignal ? 128 + ended.terminationStatus : ended.terminationStatus)
                }
                do {
                    try process.run()
                } catch {
                    process.terminationHandler = nil
                    continuation.resume(returning: nil)
                    return
                }
                let pid = process.processIdentifier
                group.addTask { await watch.end(pid: pid, after: timeout) }
            }
            group.cancelAll()
            return status
        }
        let data = (try? Data(contentsOf: output)) ?? Data()
        let text = String(decoding: data.prefix(maxOutputBytes), as: UTF8.self)
        if watch.killed.load(ordering: .acquiring) {
            return ContainerExecResult(exitCode: nil, output: text, timedOut: true)
        }
        return ContainerExecResult(exitCode: status, output: text)
    }
}

/// Ends a command that runs past its time.
private final class Watch: Sendable {
    let finished = Atomic(false)
    let killed = Atomic(false)

    /// Waits `timeout` (until cancelled), then kills `pid` unless the command has ended.
    func end(pid: Int32, after timeout: Duration) async {
        guard (try? await Task.sleep(for: timeout)) != nil, !finished.load(ordering: .acquiring) else { return }
        killed.store(true, ordering: .releasing)
        kill(pid, SIGKILL)
    }
}
