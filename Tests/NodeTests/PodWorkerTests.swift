import Foundation
import KubeModel
import Node
import Testing
import TestSupport

@Suite struct PodWorkerTests {
    private func pod(_ yaml: String) throws -> Kube.Pod { Kube.Pod(json: try JSONValue(parsing: yaml)) }

    /// Syncs every 50 ms until `condition` holds for the status (or 20 s pass).
    private func drive(_ worker: PodWorker, until condition: (JSONValue) -> Bool) async -> JSONValue {
        var status = JSONValue.null
        _ = await eventually(timeout: .seconds(20)) {
            status = await worker.sync()
            return condition(status)
        }
        return status
    }

    private func container(_ status: JSONValue, _ name: String, in list: String = "containerStatuses") -> JSONValue? {
        status[list]?.arrayValue?.first { $0["name"] == .string(name) }
    }

    @Test func initContainersRunFirstThenContainersRunAndAreAdoptedByANewWorker() async throws {
        let directory = makeTemporaryDirectory()
        defer { removeTemporaryDirectory(directory) }
        let runtime = try ProcessRuntime(root: directory + "/containers")
        defer { for id in runtime.containers() { runtime.remove(id) } }
        let pod = try pod("""
            {"metadata":{"name":"web","namespace":"default","uid":"u1"},"spec":{"restartPolicy":"Always",
             "initContainers":[{"name":"prepare","image":"none","command":["/bin/sh","-c","sleep 0.2; echo prepared > \(directory)/init.txt"]}],
             "containers":[{"name":"app","image":"none","command":["/bin/sh","-c"],"args":["cat \(directory)/init.txt; echo $MODE; exec sleep 30"],
                            "env":[{"name":"MODE","value":"edge"}]},
                           {"name":"side","image":"none","command":["/bin/sleep","30"]}]}}
            """)
        let worker = PodWorker(pod: pod, runtime: runtime, backoff: RestartBackoff(initial: .milliseconds(200)))
        let first = await worker.sync()
        #expect(first["phase"] == .string("Pending") && container(first, "app")?[path: ["state", "waiting", "reason"]] == .string("ContainerCreating"))
        let running = await drive(worker) { $0["phase"] == .string("Running") && $0[path: ["conditions"]]?.arrayValue?.contains { $0["type"] == .string("Ready") && $0["status"] == .string("True") } == true }
        #expect(running["phase"] == .string("Running"), "\(running)")
        #expect(container(running, "prepare", in: "initContainerStatuses")?[path: ["state", "terminated", "reason"]] == .string("Completed"))
        let appLog = runtime.logPath(of: ContainerID(podUID: "u1", name: "app", attempt: 0))
        #expect(await eventually { containerLogText(appLog) == "prepared\nedge\n" }, "the init container ran first")

        // A new worker (edgecore restarted) adopts the running containers: nothing starts twice.
        let again = PodWorker(pod: pod, runtime: runtime)
        let adopted = await again.sync()
        #expect(adopted["phase"] == .string("Running") && container(adopted, "app")?["restartCount"] == .number("0"))
        #expect(runtime.containers().filter { $0.name == "app" }.count == 1 && runtime.containers().count == 3)

        await again.terminate(gracePeriod: .seconds(5))
        for id in runtime.containers() {
            guard case .exited = runtime.state(of: id) else { Issue.record("\(id) still runs"); continue }
        }
    }

    @Test func aCrashingContainerRestartsWithBackOffAndNeverLeavesItFailed() async throws {
        let directory = makeTemporaryDirectory()
        defer { removeTemporaryDirectory(directory) }
        let runtime = try ProcessRuntime(root: directory + "/containers")
        defer { for id in runtime.containers() { runtime.remove(id) } }
        let crashing = { (policy: String, uid: String) in
            try self.pod(#"{"metadata":{"name":"crash","uid":"\#(uid)"},"spec":{"restartPolicy":"\#(policy)","containers":[{"name":"c","image":"none","command":["/bin/sh","-c","exit 3"]}]}}"#)
        }
        // Kubelet's default back-off (10 s, then 20 s, …), driven by the time each sync is given.
        let worker = PodWorker(pod: try crashing("OnFailure", "u-restart"), runtime: runtime)
        func end(ofAttempt attempt: Int) async throws -> Date {
            var end: Date?
            _ = await eventually(timeout: .seconds(20)) {
                guard let id = runtime.containers().first(where: { $0.podUID == "u-restart" && $0.attempt == attempt }),
                      case .exited(_, _, _, let finished) = runtime.state(of: id) else { return false }
                end = finished
                return true
            }
            return try #require(end, "attempt \(attempt) ended")
        }
        func restarts(_ status: JSONValue) -> Int64? { container(status, "c")?["restartCount"]?.int64Value }

        await worker.sync()
        let firstEnd = try await end(ofAttempt: 0)
        let waiting = await worker.sync(now: firstEnd.addingTimeInterval(9.9))
        #expect(container(waiting, "c")?[path: ["state", "waiting", "reason"]] == .string("CrashLoopBackOff"), "\(waiting)")
        #expect(container(waiting, "c")?[path: ["lastState", "terminated", "exitCode"]] == .number("3"), "\(waiting)")
        #expect(restarts(waiting) == 0)
        #expect(waiting["phase"] != .string("Failed"))
        #expect(restarts(await worker.sync(now: firstEnd.addingTimeInterval(10))) == 1, "restarted once its 10 s were up")

        let secondEnd = try await end(ofAttempt: 1)
        #expect(restarts(await worker.sync(now: secondEnd.addingTimeInterval(19.9))) == 1, "the second wait is 20 s")
        #expect(restarts(await worker.sync(now: secondEnd.addingTimeInterval(20))) == 2)
        #expect(runtime.containers().filter { $0.podUID == "u-restart" }.count == 2, "kubelet keeps the last ended attempt only")

        let never = PodWorker(pod: try crashing("Never", "u-never"), runtime: runtime)
        let failed = await drive(never) { $0["phase"] == .string("Failed") }
        #expect(failed["phase"] == .string("Failed") && container(failed, "c")?[path: ["state", "terminated", "exitCode"]] == .number("3"), "\(failed)")
        #expect(container(failed, "c")?["restartCount"] == .number("0"))
    }

    @Test func aContainerWithoutACommandWaitsWithAReasonAndTheOthersRun() async throws {
        let directory = makeTemporaryDirectory()
        defer { removeTemporaryDirectory(directory) }
        let runtime = try ProcessRuntime(root: directory + "/containers")
        defer { for id in runtime.containers() { runtime.remove(id) } }
        let worker = PodWorker(pod: try pod(#"{"metadata":{"name":"bad","uid":"u-bad"},"spec":{"containers":[{"name":"image-only","image":"nginx"},{"name":"ok","image":"none","command":["/bin/sleep","30"]}]}}"#),
                               runtime: runtime)
        let status = await drive(worker) { self.container($0, "ok")?["state"]?["running"] != nil }
        #expect(container(status, "image-only")?[path: ["state", "waiting", "reason"]] == .string("CreateContainerConfigError"), "\(status)")
        #expect(status["message"]?.stringValue?.contains("no command") == true && status["phase"] == .string("Running"))
        await worker.terminate(gracePeriod: .seconds(2))
    }
}

/// ConfigMaps and Secrets held in memory, as MetaManager's store would hand them over.
struct StoredResources: PodResourceSource {
    var configMaps: [String: Kube.ConfigMap] = [:]
    var secrets: [String: Kube.Secret] = [:]
    func configMap(namespace: String, name: String) -> Kube.ConfigMap? { configMaps["\(namespace)/\(name)"] }
    func secret(namespace: String, name: String) -> Kube.Secret? { secrets["\(namespace)/\(name)"] }
}

@Suite struct ContainerEnvironmentTests {
    @Test func theEnvironmentComesFromConfigMapsSecretsAndPodFieldsAsKubeletBuildsIt() async throws {
        let directory = makeTemporaryDirectory()
        defer { removeTemporaryDirectory(directory) }
        let runtime = try ProcessRuntime(root: directory + "/containers")
        defer { for id in runtime.containers() { runtime.remove(id) } }
        var config = Kube.ConfigMap(name: "app", namespace: "edge")
        config.data = ["MODE": "edge", "LEVEL": "debug", "not-a-name": "skipped"]
        var secret = Kube.Secret(name: "creds", namespace: "edge")
        secret.data = ["PASSWORD": Array("s3cret".utf8)]
        let resources = StoredResources(configMaps: ["edge/app": config], secrets: ["edge/creds": secret])
        let pod = Kube.Pod(json: try JSONValue(parsing: #"""
            {"metadata":{"name":"web","namespace":"edge","uid":"u-env","labels":{"tier":"front"}},"spec":{"nodeName":"edge-1","restartPolicy":"Never",
             "containers":[{"name":"app","image":"none","command":["/bin/sh","-c","env | sort"],
               "envFrom":[{"configMapRef":{"name":"app"},"prefix":"CFG_"},{"secretRef":{"name":"absent","optional":true}}],
               "env":[{"name":"LEVEL","valueFrom":{"configMapKeyRef":{"name":"app","key":"LEVEL"}}},
                      {"name":"PASSWORD","valueFrom":{"secretKeyRef":{"name":"creds","key":"PASSWORD"}}},
                      {"name":"POD","valueFrom":{"fieldRef":{"fieldPath":"metadata.name"}}},
                      {"name":"NODE","valueFrom":{"fieldRef":{"fieldPath":"spec.nodeName"}}},
                      {"name":"TIER","valueFrom":{"fieldRef":{"fieldPath":"metadata.labels['tier']"}}},
                      {"name":"GREETING","value":"mode $(CFG_MODE) on $(NODE), literal $$(NODE), unknown $(NOPE)"}]}]}}
            """#))
        let worker = PodWorker(pod: pod, runtime: runtime, resources: resources)
        _ = await eventually(timeout: .seconds(20)) { await worker.sync()["phase"] == .string("Succeeded") }
        let log = try String(contentsOfFile: runtime.logPath(of: ContainerID(podUID: "u-env", name: "app", attempt: 0)), encoding: .utf8)
        for line in ["CFG_MODE=edge", "LEVEL=debug", "PASSWORD=s3cret", "POD=web", "NODE=edge-1", "TIER=front",
                     "GREETING=mode edge on edge-1, literal $(NODE), unknown $(NOPE)", "HOSTNAME=web"] {
            #expect(log.contains(line + "\n"), "\(line) in \(log)")
        }
        #expect(!log.contains("not-a-name"))
    }

    @Test func aMissingConfigMapOrKeyLeavesTheContainerWaitingWithTheReason() async throws {
        let directory = makeTemporaryDirectory()
        defer { removeTemporaryDirectory(directory) }
        let runtime = try ProcessRuntime(root: directory + "/containers")
        defer { for id in runtime.containers() { runtime.remove(id) } }
        var config = Kube.ConfigMap(name: "app")
        config.data = ["A": "1"]
        let resources = StoredResources(configMaps: ["default/app": config])
        for (reference, message) in [(#"{"configMapKeyRef":{"name":"absent","key":"A"}}"#, #"configmap "absent" not found"#),
                                     (#"{"configMapKeyRef":{"name":"app","key":"B"}}"#, "couldn't find key B in ConfigMap default/app"),
                                     (#"{"secretKeyRef":{"name":"s","key":"k"}}"#, #"secret "s" not found"#)] {
            let pod = Kube.Pod(json: try JSONValue(parsing: #"{"metadata":{"name":"p","uid":"u-missing"},"spec":{"containers":[{"name":"c","image":"none","command":["/bin/true"],"env":[{"name":"X","valueFrom":\#(reference)}]}]}}"#))
            let status = await PodWorker(pod: pod, runtime: runtime, resources: resources).sync()
            let waiting = status["containerStatuses"]?.arrayValue?.first?[path: ["state", "waiting"]]
            #expect(waiting?["reason"] == .string("CreateContainerConfigError") && waiting?["message"] == .string(message), "\(status)")
            #expect(status["phase"] == .string("Pending") && runtime.containers().isEmpty)
        }
    }
}
