import Foundation
import KubeModel
import Node
import Testing
import TestSupport

/// The process runtime's mounts (a private mount namespace per container), cgroup limits and
/// exec, with real processes.
@Suite struct ContainerMountsAndLimitsTests {

    private func log(_ runtime: ProcessRuntime, _ id: ContainerID) -> String {
        containerLogText(runtime.logPath(of: id)) ?? ""
    }

    /// `{directory}/source` holding one file.
    private func directoryHolding(_ file: String, _ contents: String, in directory: String) throws -> String {
        let source = directory + "/source"
        try FileManager.default.createDirectory(atPath: source, withIntermediateDirectories: true)
        try contents.write(toFile: source + "/" + file, atomically: true, encoding: .utf8)
        return source
    }

    @Test func volumesAreSeenAtTheirMountPathsReadOnlyWhenAskedAndOnlyByTheContainer() async throws {
        let directory = makeTemporaryDirectory()
        defer { removeTemporaryDirectory(directory) }
        let runtime = try ProcessRuntime(root: directory + "/containers")
        defer { for id in runtime.containers() { runtime.remove(id) } }
        let source = try directoryHolding("file.txt", "from the volume\n", in: directory)
        let scratch = directory + "/scratch"
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        let mounted = directory + "/mnt/config"  // does not exist yet: the shim makes the mount point
        let id = ContainerID(podUID: "u-mount", name: "app", attempt: 0)
        try runtime.start(ContainerLaunch(id: id, command: ["/bin/sh", "-c", """
            cat \(mounted)/file.txt
            echo write > \(mounted)/new.txt && echo wrote-read-only || echo refused
            echo data > \(directory)/mnt/scratch/out.txt && echo wrote-scratch
            """], environment: ["PATH": "/usr/bin:/bin"],
            mounts: [ContainerMount(source: source, destination: mounted, readOnly: true),
                     ContainerMount(source: scratch, destination: directory + "/mnt/scratch", readOnly: false)]))
        guard case .exited(let code, _, _, _)? = await ended(runtime, id) else { Issue.record("never ended"); return }
        let output = log(runtime, id)
        #expect(code == 0 && output.contains("from the volume") && output.contains("refused") && output.contains("wrote-scratch"), "\(output)")
        #expect(!output.contains("wrote-read-only"))
        // The write went to the bound directory; outside the container the mount point is empty.
        #expect(try String(contentsOfFile: scratch + "/out.txt", encoding: .utf8) == "data\n")
        #expect(!FileManager.default.fileExists(atPath: mounted + "/file.txt"))
    }

    @Test func aMountThatCannotBeMadeEndsTheContainerWithTheReasonInItsLog() async throws {
        let directory = makeTemporaryDirectory()
        defer { removeTemporaryDirectory(directory) }
        let runtime = try ProcessRuntime(root: directory + "/containers")
        defer { for id in runtime.containers() { runtime.remove(id) } }
        let id = ContainerID(podUID: "u-badmount", name: "app", attempt: 0)
        try runtime.start(ContainerLaunch(id: id, command: ["/bin/true"], mounts: [ContainerMount(source: directory + "/absent", destination: directory + "/mnt", readOnly: true)]))
        guard case .exited(let code, _, _, _)? = await ended(runtime, id) else { Issue.record("never ended"); return }
        #expect(code == 125 && log(runtime, id).contains("cannot mount \(directory)/absent"), "\(log(runtime, id))")
    }

    @Test func aMemoryLimitIsEnforcedThroughTheCgroupAndRemovedWithTheContainer() async throws {
        let directory = makeTemporaryDirectory()
        defer { removeTemporaryDirectory(directory) }
        let runtime = try ProcessRuntime(root: directory + "/containers")
        defer { for id in runtime.containers() { runtime.remove(id) } }
        let id = ContainerID(podUID: "u-oom", name: "hog", attempt: 0)
        // 200 MiB in a 32 MiB cgroup: the kernel's OOM killer ends it.
        try runtime.start(ContainerLaunch(id: id, command: ["/usr/bin/python3", "-c", "b = bytearray(200 * 1024 * 1024); print('survived')"],
                                          resources: ContainerResources(memoryLimitBytes: 32 << 20, cpuLimitMillicores: 500, cpuRequestMillicores: 250)))
        let cgroup = "/sys/fs/cgroup/memory/edged/\(id)"
        #expect(try String(contentsOfFile: cgroup + "/memory.limit_in_bytes", encoding: .utf8) == "\(32 << 20)\n")
        #expect(try String(contentsOfFile: "/sys/fs/cgroup/cpu/edged/\(id)/cpu.cfs_quota_us", encoding: .utf8) == "50000\n")
        #expect(try String(contentsOfFile: "/sys/fs/cgroup/cpu/edged/\(id)/cpu.shares", encoding: .utf8) == "256\n")
        #expect(runtime.warnings(of: id).isEmpty)
        guard case .exited(_, let signal, _, _)? = await ended(runtime, id) else { Issue.record("never ended"); return }
        #expect(signal == SIGKILL && !log(runtime, id).contains("survived"), "\(log(runtime, id))")
        runtime.remove(id)
        #expect(!FileManager.default.fileExists(atPath: cgroup))

        // Without it, the same program gets its memory: the limit, not the program, ended it.
        let free = ContainerID(podUID: "u-oom", name: "free", attempt: 0)
        try runtime.start(ContainerLaunch(id: free, command: ["/usr/bin/python3", "-c", "b = bytearray(200 * 1024 * 1024); print('survived')"]))
        guard case .exited(let code, _, _, _)? = await ended(runtime, free) else { Issue.record("never ended"); return }
        #expect(code == 0 && log(runtime, free).contains("survived"))
    }

    @Test func limitsThatCannotBeWrittenAreReportedAndTheContainerStillRuns() async throws {
        let directory = makeTemporaryDirectory()
        defer { removeTemporaryDirectory(directory) }
        let runtime = try ProcessRuntime(root: directory + "/containers", cgroupRoot: "/proc/no-cgroups-here")
        defer { for id in runtime.containers() { runtime.remove(id) } }
        let id = ContainerID(podUID: "u-nolimit", name: "app", attempt: 0)
        try runtime.start(ContainerLaunch(id: id, command: ["/bin/sh", "-c", "echo ran"], resources: ContainerResources(memoryLimitBytes: 64 << 20)))
        guard case .exited(let code, _, _, _)? = await ended(runtime, id) else { Issue.record("never ended"); return }
        #expect(code == 0 && log(runtime, id) == "ran\n")
        let warnings = runtime.warnings(of: id)
        #expect(warnings.count == 1 && warnings[0].hasPrefix("memory limit not enforced: cannot write the cgroup /proc/no-cgroups-here/memory/edged/"), "\(warnings)")
    }

    @Test func execRunsBesideTheContainerWithItsMountsEnvironmentAndDirectory() async throws {
        let directory = makeTemporaryDirectory()
        defer { removeTemporaryDirectory(directory) }
        let runtime = try ProcessRuntime(root: directory + "/containers")
        defer { for id in runtime.containers() { runtime.remove(id) } }
        let source = try directoryHolding("marker", "inside", in: directory)
        let id = ContainerID(podUID: "u-exec", name: "app", attempt: 0)
        try runtime.start(ContainerLaunch(id: id, command: ["/bin/sleep", "30"], environment: ["PATH": "/usr/bin:/bin", "ROLE": "probe-me"],
                                          workingDirectory: directory, mounts: [ContainerMount(source: source, destination: directory + "/mnt", readOnly: true)]))
        let result = await runtime.exec(in: id, command: ["/bin/sh", "-c", "cat mnt/marker; echo \" $ROLE\"; exit 4"], timeout: .seconds(5))
        #expect(result == ContainerExecResult(exitCode: 4, output: "inside probe-me\n"))
        let slow = await runtime.exec(in: id, command: ["/bin/sleep", "10"], timeout: .milliseconds(300))
        #expect(slow.timedOut && slow.exitCode == nil)
        let missing = await runtime.exec(in: id, command: ["/no/such/program"], timeout: .seconds(5))
        #expect(missing.exitCode == 127 && missing.output.contains("cannot run /no/such/program"))
        await runtime.stop(id, gracePeriod: .seconds(2))
        let stopped = await runtime.exec(in: id, command: ["/bin/true"], timeout: .seconds(5))
        #expect(stopped.exitCode == nil && stopped.output == "the container is not running")
    }
}

@Suite struct QuantityTests {
    @Test func quantitiesParseAsKubernetesWritesThem() {
        #expect(Quantity("500m")?.milliValue == 500 && Quantity("1")?.milliValue == 1000 && Quantity("0.25")?.milliValue == 250)
        #expect(Quantity("128Mi")?.value == 134_217_728 && Quantity("1G")?.value == 1_000_000_000 && Quantity("2e3")?.value == 2000)
        #expect(Quantity("1.5Gi")?.value == 1_610_612_736 && Quantity("100k")?.value == 100_000 && Quantity("1n")?.milliValue == 1)
        for bad in ["", "Mi", "1.2.3", "12x", "1e", "abc", "."] { #expect(Quantity(bad) == nil, "\(bad)") }
    }
}
