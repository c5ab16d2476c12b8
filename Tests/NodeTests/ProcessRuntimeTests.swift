import Foundation
import Node
import Testing
import TestSupport

/// The container's state once it has ended (or its last state after 15 s).
func ended(_ runtime: ProcessRuntime, _ id: ContainerID) async -> ContainerState? {
    var last: ContainerState?
    _ = await eventually(timeout: .seconds(15)) {
        last = runtime.state(of: id)
        if case .exited = last { return true }
        return false
    }
    return last
}

@Suite struct ProcessRuntimeTests {
    private func runtime(_ directory: String) throws -> ProcessRuntime { try ProcessRuntime(root: directory + "/containers") }

    private func id(_ name: String, attempt: Int = 0) -> ContainerID { ContainerID(podUID: "uid-1", name: name, attempt: attempt) }


    @Test func aContainerRunsWithItsEnvironmentAndDirectoryAndItsOutputAndExitCodeAreKept() async throws {
        let directory = makeTemporaryDirectory()
        defer { removeTemporaryDirectory(directory) }
        let runtime = try runtime(directory)
        defer { for container in runtime.containers() { runtime.remove(container) } }  // no process outlives a failed test
        let work = directory + "/work"
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        let started = try runtime.start(ContainerLaunch(
            id: id("app"), command: ["/bin/sh", "-c", #"echo "out $GREETING"; echo err >&2; pwd; exit 3"#],
            environment: ["GREETING": "hello", "PATH": "/usr/bin:/bin"], workingDirectory: work))
        guard case .exited(let code, let signal, _, _)? = await ended(runtime, started) else { Issue.record("never ended"); return }
        #expect(code == 3 && signal == nil)
        let log = try String(contentsOfFile: runtime.logPath(of: started), encoding: .utf8)
        #expect(log.contains("out hello") && log.contains("err") && log.contains(work), "\(log)")
        // Records in the CRI log format, each stream's lines apart.
        let records = log.split(separator: "\n").compactMap { ContainerLogRecord(line: $0) }
        #expect(records.filter { $0.stream == "stdout" }.map(\.message) == ["out hello", Substring(work)], "\(log)")
        #expect(records.filter { $0.stream == "stderr" }.map(\.message) == ["err"], "\(log)")
        #expect(records.allSatisfy { $0.isFullLine })
        #expect(runtime.containers() == [started])
        runtime.remove(started)
        #expect(runtime.containers().isEmpty && runtime.state(of: started) == .unknown)
    }

    @Test func aMissingProgramOrCommandIsReportedNotCrashed() async throws {
        let directory = makeTemporaryDirectory()
        defer { removeTemporaryDirectory(directory) }
        let runtime = try runtime(directory)
        defer { for container in runtime.containers() { runtime.remove(container) } }  // no process outlives a failed test
        let missing = try runtime.start(ContainerLaunch(id: id("missing"), command: ["/no/such/program"]))
        guard case .exited(let code, _, _, _)? = await ended(runtime, missing) else { Issue.record("never ended"); return }
        #expect(code == 127)
        #expect(try String(contentsOfFile: runtime.logPath(of: missing), encoding: .utf8).contains("cannot run /no/such/program"))
        let badDirectory = try runtime.start(ContainerLaunch(id: id("cwd"), command: ["/bin/true"], workingDirectory: directory + "/absent"))
        guard case .exited(let cwdCode, _, _, _)? = await ended(runtime, badDirectory) else { Issue.record("never ended"); return }
        #expect(cwdCode == 126)
        #expect(throws: ContainerRuntimeError(reason: "CreateContainerConfigError", message: "the container has no command (the process runtime runs no images)")) {
            try runtime.start(ContainerLaunch(id: id("empty"), command: []))
        }
    }

    @Test func stoppingSendsSIGTERMThenSIGKILLAfterTheGracePeriod() async throws {
        let directory = makeTemporaryDirectory()
        defer { removeTemporaryDirectory(directory) }
        let runtime = try runtime(directory)
        defer { for container in runtime.containers() { runtime.remove(container) } }  // no process outlives a failed test
        // Handles SIGTERM (this test process blocks it; the container must not inherit that).
        let polite = try runtime.start(ContainerLaunch(id: id("polite"), command: ["/bin/sh", "-c", #"trap 'echo bye; exit 0' TERM; echo up; while :; do sleep 0.05; done"#]))
        let stubborn = try runtime.start(ContainerLaunch(id: id("stubborn"), command: ["/bin/sh", "-c", #"trap '' TERM; echo up; while :; do sleep 0.05; done"#]))
        for container in [polite, stubborn] {
            #expect(await eventually { (try? String(contentsOfFile: runtime.logPath(of: container), encoding: .utf8))?.contains("up") == true })
            guard case .running = runtime.state(of: container) else { Issue.record("\(container) is not running"); return }
        }
        await runtime.stop(polite, gracePeriod: .seconds(10))
        guard case .exited(0, nil, _, _) = runtime.state(of: polite) else { Issue.record("\(runtime.state(of: polite))"); return }
        #expect(try String(contentsOfFile: runtime.logPath(of: polite), encoding: .utf8).contains("bye"))
        let clock = ContinuousClock()
        let start = clock.now
        await runtime.stop(stubborn, gracePeriod: .milliseconds(500))
        #expect(clock.now - start >= .milliseconds(500))
        guard case .exited(137, 9, _, _) = runtime.state(of: stubborn) else { Issue.record("\(runtime.state(of: stubborn))"); return }
    }

    @Test func containersOutliveTheRuntimeAndAreFoundAgainByAnotherOne() async throws {
        let directory = makeTemporaryDirectory()
        defer { removeTemporaryDirectory(directory) }
        let first = try runtime(directory)
        defer { for container in first.containers() { first.remove(container) } }
        let sleeper = try first.start(ContainerLaunch(id: id("sleeper", attempt: 2), command: ["/bin/sleep", "30"]))
        let quick = try first.start(ContainerLaunch(id: id("quick"), command: ["/bin/sh", "-c", "exit 4"]))
        _ = await ended(first, quick)
        // A runtime opened again (edgecore restarted) finds both, by PID and start time.
        let second = try runtime(directory)
        #expect(second.containers() == [quick, sleeper])
        guard case .running = second.state(of: sleeper) else { Issue.record("\(second.state(of: sleeper))"); return }
        guard case .exited(4, nil, _, _) = second.state(of: quick) else { Issue.record("\(second.state(of: quick))"); return }
        await second.stop(sleeper, gracePeriod: .seconds(5))
        guard case .exited(_, SIGTERM, _, _) = second.state(of: sleeper) else { Issue.record("\(second.state(of: sleeper))"); return }
    }

    @Test func logsRotateWhileTheContainerKeepsWriting() async throws {
        let directory = makeTemporaryDirectory()
        defer { removeTemporaryDirectory(directory) }
        let runtime = try runtime(directory)
        defer { for container in runtime.containers() { runtime.remove(container) } }  // no process outlives a failed test
        let writer = try runtime.start(ContainerLaunch(id: id("writer"), command: ["/bin/sh", "-c", #"i=0; while :; do echo "line $i"; i=$((i+1)); sleep 0.01; done"#]))
        let path = runtime.logPath(of: writer)
        let size = { ((try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? nil) ?? 0 }
        #expect(await eventually { size() > 200 })
        runtime.rotateLogs(maxBytes: 100, keep: 2)
        #expect(FileManager.default.fileExists(atPath: path + ".1"))
        #expect(size() < 200)
        // Still appended to after the truncation (no hole of zeros at the start).
        #expect(await eventually { (try? String(contentsOfFile: path, encoding: .utf8))?.contains("line") == true })
        #expect(try String(contentsOfFile: path, encoding: .utf8).first != "\0")
        runtime.rotateLogs(maxBytes: 0, keep: 2)
        #expect(FileManager.default.fileExists(atPath: path + ".2"))
        await runtime.stop(writer, gracePeriod: .seconds(5))
    }
}
