import Foundation
import KubeModel
import Node
import Testing
import TestSupport

/// Edged's CRI runtime against a real containerd (with runc) that each test starts for itself.
@Suite(.serialized) struct CRIRuntimeTests {
    private func container(_ status: JSONValue, _ name: String) -> JSONValue? {
        status["containerStatuses"]?.arrayValue?.first { $0["name"] == .string(name) }
    }

    /// Probes and syncs every 200 ms until `condition` holds for the status (or `timeout` passes).
    private func drive(_ worker: PodWorker, timeout: Duration = .seconds(60), until condition: (JSONValue) -> Bool) async -> JSONValue {
        var status = JSONValue.null
        _ = await eventually(timeout: timeout) {
            await worker.probe()
            status = await worker.sync()
            if condition(status) { return true }
            try? await Task.sleep(for: .milliseconds(200))
            return false
        }
        return status
    }

    private func withContainerd(_ body: (LocalContainerd, String) async throws -> Void) async throws {
        let containerd = try await LocalContainerd()
        let directory = makeTemporaryDirectory()
        var failure: (any Error)?
        do { try await body(containerd, directory) } catch { failure = error }
        await containerd.stop()
        removeTemporaryDirectory(directory)
        if let failure { throw failure }
    }

    @Test func aPodRunsInContainerdWithInitContainerEnvVolumesLimitsProbesAndLogsAndIsAdoptedByANewRuntime() async throws {
        try await withContainerd { containerd, directory in
            let runtime = try CRIRuntime(endpoint: containerd.endpoint, logRoot: directory + "/logs")
            #expect(try await runtime.version().hasPrefix("containerd"))
            let resources = ChangingResources()
            var config = Kube.ConfigMap(name: "app", namespace: "apps")
            config.data = ["mode": "edge"]
            resources.set(config)
            var secret = Kube.Secret(name: "token", namespace: "apps")
            secret.data = ["token": Array("s3cret".utf8)]
            resources.set(secret)
            let port = freeLoopbackPort()
            let image = LocalContainerd.image
            let pod = Kube.Pod(json: try JSONValue(parsing: """
                {"metadata":{"name":"web","namespace":"apps","uid":"u-cri-web"},"spec":{"hostNetwork":true,"restartPolicy":"Always",
                 "volumes":[{"name":"work","emptyDir":{}},{"name":"www","emptyDir":{}},{"name":"token","secret":{"secretName":"token"}}],
                 "initContainers":[{"name":"prepare","image":"\(image)","command":["sh","-c","echo prepared > /work/ready"],
                                    "volumeMounts":[{"name":"work","mountPath":"/work"}]}],
                 "containers":[{"name":"web","image":"\(image)","imagePullPolicy":"Never",
                                "command":["sh","-c","test \\"$(cat /secret/token)\\" = s3cret && echo mode=$MODE && echo ok > /www/index.html && exec httpd -f -p 127.0.0.1:\(port) -h /www"],
                                "env":[{"name":"MODE","valueFrom":{"configMapKeyRef":{"name":"app","key":"mode"}}}],
                                "volumeMounts":[{"name":"www","mountPath":"/www"},{"name":"token","mountPath":"/secret","readOnly":true},{"name":"work","mountPath":"/work"}],
                                "resources":{"limits":{"memory":"64Mi","cpu":"250m"}},
                                "readinessProbe":{"httpGet":{"path":"/index.html","port":\(port)},"periodSeconds":1},
                                "livenessProbe":{"exec":{"command":["cat","/work/ready"]},"periodSeconds":1}},
                               {"name":"ticker","image":"\(image)","command":["sh","-c","while true; do echo tick; sleep 0.1; done"],"volumeMounts":[{"name":"work","mountPath":"/work","readOnly":true}]}]}}
                """))
            let worker = PodWorker(pod: pod, runtime: runtime, resources: resources, podsRoot: directory + "/pods")
            let ready = await drive(worker) { $0[path: ["conditions"]]?.arrayValue?.contains { $0["type"] == .string("Ready") && $0["status"] == .string("True") } == true }
            #expect(ready["phase"] == .string("Running"), "\(ready)")
            #expect(container(ready, "web")?["ready"] == .bool(true), "the readiness probe reached httpd in the host-network pod: \(container(ready, "web") ?? .null)")
            #expect(ready["initContainerStatuses"]?.arrayValue?.first?[path: ["state", "terminated", "exitCode"]] == .integer(0))
            // As kubelet names them: containerd's id and the image's digest.
            let webStatus = container(ready, "web")
            #expect(webStatus?["containerID"]?.stringValue?.hasPrefix("containerd://") == true, "\(webStatus ?? .null)")
            #expect(webStatus?["imageID"]?.stringValue?.contains("sha256:") == true, "\(webStatus ?? .null)")
            // The node lists the image, as kubelet's status.images does: its names (an imported
            // image has a tag and no registry digest) and its size.
            let listed = await runtime.images()
            #expect(listed.contains { $0.names.contains(image) && $0.sizeBytes > 0 }, "\(listed)")

            // What ran is in containerd's CRI-format log, and limits are runc's cgroup settings.
            let web = ContainerID(podUID: "u-cri-web", name: "web", attempt: 0)
            let log = (try? String(contentsOfFile: runtime.logPath(of: web), encoding: .utf8)) ?? ""
            #expect(log.contains(" stdout F mode=edge"), "\(log)")
            let memory = await runtime.exec(in: web, command: ["cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes"], timeout: .seconds(5))
            #expect(memory.exitCode == 0 && memory.output.trimmingCharacters(in: .whitespacesAndNewlines) == String(64 << 20), "\(memory)")
            let quota = await runtime.exec(in: web, command: ["cat", "/sys/fs/cgroup/cpu/cpu.cfs_quota_us"], timeout: .seconds(5))
            #expect(quota.output.trimmingCharacters(in: .whitespacesAndNewlines) == "25000", "\(quota)")
            let failing = await runtime.exec(in: web, command: ["sh", "-c", "echo nope >&2; exit 7"], timeout: .seconds(5))
            #expect(failing.exitCode == 7 && failing.output.contains("nope"))
            let slow = await runtime.exec(in: web, command: ["sleep", "30"], timeout: .seconds(1))
            #expect(slow.timedOut && slow.exitCode == nil, "an exec past its timeout is reported as such: \(slow)")

            // Rotation moves a log aside and containerd reopens it: the container writes on.
            let ticker = runtime.logPath(of: ContainerID(podUID: "u-cri-web", name: "ticker", attempt: 0))
            await runtime.rotateLogs(maxBytes: 1, keep: 2)
            #expect(FileManager.default.fileExists(atPath: ticker + ".1"))
            #expect(await eventually { ((try? String(contentsOfFile: ticker, encoding: .utf8)) ?? "").contains("stdout F tick") }, "written after the reopen")

            // A runtime and worker made afresh (an edgecore restart) adopt what runs.
            let before = await runtime.containers()
            #expect(before.count == 3)
            let again = try CRIRuntime(endpoint: containerd.endpoint, logRoot: directory + "/logs")
            let adopted = PodWorker(pod: pod, runtime: again, resources: resources, podsRoot: directory + "/pods")
            let status = await adopted.sync()
            #expect(status["phase"] == .string("Running"))
            #expect(container(status, "web")?["restartCount"] == .integer(0))
            #expect(await again.containers() == before, "nothing started twice")

            // Deleting stops the containers and removes them and the sandbox.
            await adopted.terminate(gracePeriod: .seconds(2))
            await adopted.remove()
            #expect(await again.pods().isEmpty)
            #expect(await again.containers().isEmpty)
            #expect(!FileManager.default.fileExists(atPath: directory + "/logs/u-cri-web"))
        }
    }

    @Test func crashesRestartWithBackOffNeverLeavesItFailedAndImageAndRuntimeProblemsAreReasons() async throws {
        try await withContainerd { containerd, directory in
            let runtime = try CRIRuntime(endpoint: containerd.endpoint, logRoot: directory + "/logs")
            let image = LocalContainerd.image
            func pod(_ name: String, policy: String, hostNetwork: Bool = true, _ container: String) throws -> Kube.Pod {
                Kube.Pod(json: try JSONValue(parsing: """
                    {"metadata":{"name":"\(name)","uid":"u-\(name)"},"spec":{"hostNetwork":\(hostNetwork),"restartPolicy":"\(policy)","containers":[\(container)]}}
                    """))
            }
            let backoff = RestartBackoff(initial: .milliseconds(500), maximum: .seconds(2))

            // Never: the exit code stays, nothing restarts.
            let never = PodWorker(pod: try pod("never", policy: "Never", #"{"name":"c","image":"\#(image)","command":["sh","-c","exit 3"]}"#),
                                  runtime: runtime, backoff: backoff)
            let failed = await drive(never) { $0["phase"] == .string("Failed") }
            #expect(container(failed, "c")?[path: ["state", "terminated", "exitCode"]] == .integer(3), "\(failed)")
            #expect(container(failed, "c")?["restartCount"] == .integer(0))

            // OnFailure: restarted with back-off, the previous attempt as lastState.
            let crashing = PodWorker(pod: try pod("crash", policy: "OnFailure", #"{"name":"c","image":"\#(image)","command":["sh","-c","sleep 0.2; exit 2"]}"#),
                                     runtime: runtime, backoff: backoff)
            let restarted = await drive(crashing) { (self.container($0, "c")?["restartCount"]?.int64Value ?? 0) >= 2 }
            #expect(container(restarted, "c")?[path: ["lastState", "terminated", "exitCode"]] == .integer(2), "\(restarted)")

            // Over its memory limit the kernel kills it, and the status says so.
            let hungry = PodWorker(pod: try pod("hungry", policy: "Never", #"""
                {"name":"c","image":"\#(image)","command":["sh","-c","x=$(head -c 100000000 /dev/zero | tr '\\0' a); echo survived"],
                 "resources":{"limits":{"memory":"16Mi"}}}
                """#), runtime: runtime, backoff: backoff)
            let killed = await drive(hungry) { $0["phase"] == .string("Failed") }
            #expect(container(killed, "c")?[path: ["state", "terminated", "reason"]] == .string("OOMKilled"), "\(container(killed, "c") ?? .null)")
            #expect(container(killed, "c")?[path: ["state", "terminated", "exitCode"]] == .integer(137))

            // The image's own command runs when the container gives none.
            let entrypoint = PodWorker(pod: try pod("entry", policy: "Always", #"{"name":"c","image":"\#(image)"}"#), runtime: runtime)
            let running = await drive(entrypoint) { $0["phase"] == .string("Running") }
            #expect(running["phase"] == .string("Running"), "the image's `sleep infinity`: \(running)")

            // A pod of its own network needs a CNI network that gives it an address; this
            // containerd has only the loopback plugin, and the reason says so.
            let bridged = PodWorker(pod: try pod("bridged", policy: "Always", hostNetwork: false, #"{"name":"c","image":"\#(image)"}"#), runtime: runtime)
            let noNetwork = await bridged.sync()
            #expect(container(noNetwork, "c")?[path: ["state", "waiting", "reason"]] == .string("CreatePodSandboxError"), "\(noNetwork)")
            #expect(noNetwork["message"]?.stringValue?.contains("network") == true)

            // Missing images and an unreachable registry are waiting reasons, not crashes.
            let neverPull = PodWorker(pod: try pod("nopull", policy: "Always", #"{"name":"c","image":"localhost/absent:1","imagePullPolicy":"Never"}"#), runtime: runtime)
            let notPulled = await neverPull.sync()
            #expect(container(notPulled, "c")?[path: ["state", "waiting", "reason"]] == .string("ErrImageNeverPull"), "\(notPulled)")
            let unreachable = PodWorker(pod: try pod("pull", policy: "Always", #"{"name":"c","image":"127.0.0.1:1/absent:1"}"#), runtime: runtime)
            let pullFailed = await unreachable.sync()
            #expect(container(pullFailed, "c")?[path: ["state", "waiting", "reason"]] == .string("ErrImagePull"), "\(pullFailed)")
            #expect(pullFailed["message"]?.stringValue?.contains("127.0.0.1:1/absent:1") == true)

            // A runtime that does not answer: a clear reason, no containers, no crash.
            let away = try CRIRuntime(endpoint: "unix://" + directory + "/no.sock", logRoot: directory + "/away-logs", callTimeout: .seconds(1))
            await #expect(throws: ContainerRuntimeError.self) { try await away.version() }
            let stranded = PodWorker(pod: try pod("away", policy: "Always", #"{"name":"c","image":"\#(image)"}"#), runtime: away)
            let waiting = await stranded.sync()
            #expect(waiting["phase"] == .string("Pending"))
            #expect(waiting["message"]?.stringValue?.contains("cannot connect") == true, "\(waiting)")
            #expect(await away.containers().isEmpty)
            #expect(throws: ContainerRuntimeError.self) { try CRIRuntime(endpoint: "tcp://127.0.0.1:1", logRoot: directory + "/x") }
            // A reply over the configured size is refused, not taken.
            let small = try CRIRuntime(endpoint: containerd.endpoint, logRoot: directory + "/logs", maxMessageBytes: 16)
            await #expect { try await small.version() } throws: { "\($0)".contains("over 16 bytes") }

            for worker in [never, crashing, hungry, entrypoint, bridged] {
                await worker.terminate(gracePeriod: .zero)
                await worker.remove()
            }
            #expect(await runtime.pods().isEmpty)
        }
    }
}
