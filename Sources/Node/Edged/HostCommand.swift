import Foundation
import NIOCore
import NIOPosix
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
        let status: Int32? = await withCheckedContinuation { (continuation: CheckedContinuation<Int32?, Never>) in
            process.terminationHandler = { ended in
                continuation.resume(returning: ended.terminationReason == .uncaughtSignal ? 128 + ended.terminationStatus : ended.terminationStatus)
            }
            do {
                try process.run()
            } catch {
                process.terminationHandler = nil
                continuation.resume(returning: nil)
                return
            }
            watch.end(pid: process.processIdentifier, after: timeout)
        }
        watch.finish()
        let data = (try? Data(contentsOf: output)) ?? Data()
        let text = String(decoding: data.prefix(maxOutputBytes), as: UTF8.self)
        if watch.killed.load(ordering: .acquiring) {
            return ContainerExecResult(exitCode: nil, output: text, timedOut: true)
        }
        return ContainerExecResult(exitCode: status, output: text)
    }
}

/// Ends a command that runs past its time: a timer on an event loop (no task waits for it).
private final class Watch: Sendable {
    let killed = Atomic(false)
    private let timer = Mutex<Scheduled<Void>?>(nil)
    private let finished = Atomic(false)

    func end(pid: Int32, after timeout: Duration) {
        let scheduled = NIOSingletons.posixEventLoopGroup.any().scheduleTask(in: .nanoseconds(Int64(timeout.components.seconds) * 1_000_000_000
                                                                                              + timeout.components.attoseconds / 1_000_000_000)) { [self] in
            guard !finished.load(ordering: .acquiring) else { return }
            killed.store(true, ordering: .releasing)
            kill(pid, SIGKILL)
        }
        timer.withLock { $0 = scheduled }
        if finished.load(ordering: .acquiring) { scheduled.cancel() }
    }

    /// The command ended: the timer is not needed any more.
    func finish() {
        finished.store(true, ordering: .releasing)
        timer.withLock { $0 }?.cancel()
    }
}
