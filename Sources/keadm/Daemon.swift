import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// One daemon keadm looks after: started in a process group of its own, its output in
/// `{root}/{name}.log`, its process id in `{root}/{name}.pid`.
struct Daemon {
    let name: String
    let root: String

    var logPath: String { "\(root)/\(name).log" }
    var pidPath: String { "\(root)/\(name).pid" }

    /// The executable `name` beside keadm.
    static func binary(_ name: String) -> String {
        URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent().appendingPathComponent(name).path
    }

    /// The process id in the pid file, if that process still runs.
    var runningPID: Int32? {
        guard let text = try? String(contentsOfFile: pidPath, encoding: .utf8), let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)),
              kill(pid, 0) == 0 else { return nil }
        return pid
    }

    /// Starts the daemon unless it runs, then waits until `readiness` answers 200.
    func start(arguments: [String], readiness: String) async throws {
        if let pid = runningPID { throw KeadmError("\(name) already runs (pid \(pid)); `keadm reset` stops it") }
        if await Self.get(readiness) != nil {
            throw KeadmError("something already answers \(readiness): another \(name) runs on this machine; stop it first")
        }
        try Step.run("Starting \(name)") {
            // Process starts it in a process group of its own: a Ctrl-C for keadm's terminal
            // does not reach it, and it outlives keadm.
            let process = Process()
            process.executableURL = URL(fileURLWithPath: Self.binary(name))
            process.arguments = arguments
            _ = FileManager.default.createFile(atPath: logPath, contents: nil)
            let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
            process.standardOutput = log
            process.standardError = log
            process.standardInput = FileHandle.nullDevice
            try process.run()
            try "\(process.processIdentifier)\n".write(toFile: pidPath, atomically: true, encoding: .utf8)
            return "pid \(process.processIdentifier), log \(logPath)"
        }
        do {
            try await Step.wait("Waiting for \(name) to be ready", timeout: .seconds(60)) {
                guard runningPID != nil else { throw KeadmError("\(name) exited; the end of \(logPath):\n\(tail())") }
                return await Self.get(readiness) != nil
            }
        } catch {
            try? await stop(quietly: true)
            throw error
        }
    }

    /// SIGTERM, waiting up to 30 s, then SIGKILL.
    func stop(quietly: Bool = false) async throws {
        let work = { () async -> String? in
            guard let pid = runningPID else { return "not running" }
            kill(pid, SIGTERM)
            for _ in 0..<300 where kill(pid, 0) == 0 { try? await Task.sleep(for: .milliseconds(100)) }
            if kill(pid, 0) == 0 {
                kill(pid, SIGKILL)
                return "killed: it did not stop within 30 s"
            }
            try? FileManager.default.removeItem(atPath: pidPath)
            return nil
        }
        if quietly { _ = await work() } else { try await Step.perform("Stopping \(name)", work) }
    }

    /// The last lines of the daemon's log.
    func tail(lines: Int = 20) -> String {
        let text = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
        return text.split(separator: "\n", omittingEmptySubsequences: false).suffix(lines).joined(separator: "\n")
    }

    /// The body of a 200 answer to `GET url`, else `nil`.
    static func get(_ url: String) async -> String? {
        guard let address = URL(string: url), let (data, response) = try? await URLSession.shared.data(from: address),
              (response as? HTTPURLResponse)?.statusCode == 200 else { return nil }
        return String(decoding: data, as: UTF8.self)
    }

    /// Runs a command to its end: exit status and output.
    static func runToEnd(_ executable: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }
}

/// Progress output: `[n] what… done` (or what happened instead), one line per step.
enum Step {
    nonisolated(unsafe) private static var number = 0

    /// Runs one step; `body` returns a note to print instead of "done".
    static func run(_ what: String, _ body: () throws -> String?) throws {
        number += 1
        print("[\(number)] \(what)… ", terminator: "")
        fflush(nil)
        do {
            print(try body() ?? "done")
        } catch {
            print("failed")
            throw error
        }
    }

    static func perform(_ what: String, _ body: () async throws -> String?) async throws {
        number += 1
        print("[\(number)] \(what)… ", terminator: "")
        fflush(nil)
        do {
            print(try await body() ?? "done")
        } catch {
            print("failed")
            throw error
        }
    }

    /// Polls `ready` every 200 ms until it is true or `timeout` passes.
    static func wait(_ what: String, timeout: Duration, _ ready: () async throws -> Bool) async throws {
        try await perform(what) { () async throws -> String? in
            let clock = ContinuousClock()
            let deadline = clock.now + timeout
            while clock.now < deadline {
                if try await ready() { return "ready" }
                try await Task.sleep(for: .milliseconds(200))
            }
            throw KeadmError("not ready after \(timeout)")
        }
    }
}
