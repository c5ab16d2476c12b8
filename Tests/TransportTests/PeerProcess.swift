import Foundation
import NIOConcurrencyHelpers

/// An external peer program (Python, Debian tools) run by a test: its output is collected as it
/// arrives, so a test can wait for a line, and the process is stopped when the test is done.
final class PeerProcess: Sendable {
    private let process: Process
    private let input: Pipe
    private let collected = NIOLockedValueBox(Data())

    /// Starts `arguments[0]` (looked up on PATH) with the rest as arguments.
    init(_ arguments: [String]) throws {
        process = Process()
        input = Pipe()
        let output = Pipe()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        process.standardInput = input
        process.standardOutput = output
        process.standardError = output
        let collected = collected
        output.fileHandleForReading.readabilityHandler = { handle in
            let data = handle.availableData
            if !data.isEmpty { collected.withLockedValue { $0.append(data) } }
        }
        try process.run()
    }

    /// The path of a peer script in `Tests/TransportTests/Peers`.
    static func script(_ name: String) -> String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Peers/\(name)").path
    }

    /// Everything the process wrote so far (standard output and error).
    var output: String { String(decoding: collected.withLockedValue { $0 }, as: UTF8.self) }

    /// Waits for the process to exit, up to `timeout`; returns its status (nil if still running).
    func exitStatus(within timeout: Duration) async -> Int32? {
        let deadline = ContinuousClock.now + timeout
        while process.isRunning, ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(20)) }
        guard !process.isRunning else { return nil }
        try? await Task.sleep(for: .milliseconds(50))  // the last output
        return process.terminationStatus
    }

    /// Closes the process's standard input (peers that run until it closes then exit).
    func closeInput() {
        try? input.fileHandleForWriting.close()
    }

    /// Stops the process if it still runs.
    func stop() {
        closeInput()
        if process.isRunning { process.terminate() }
        process.waitUntilExit()
    }
}
