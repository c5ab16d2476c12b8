import Foundation
import KubeModel
import Node
import Synchronization
import Testing
import TestSupport

/// ConfigMaps and Secrets that a test changes while a pod runs.
final class ChangingResources: PodResourceSource {
    private let stored = Mutex(StoredResources())
    func configMap(namespace: String, name: String) -> Kube.ConfigMap? { stored.withLock { $0.configMap(namespace: namespace, name: name) } }
    func secret(namespace: String, name: String) -> Kube.Secret? { stored.withLock { $0.secret(namespace: namespace, name: name) } }
    func set(_ map: Kube.ConfigMap) { stored.withLock { $0.configMaps["\(map.namespace.isEmpty ? "default" : map.namespace)/\(map.name)"] = map } }
    func set(_ secret: Kube.Secret) { stored.withLock { $0.secrets["\(secret.namespace.isEmpty ? "default" : secret.namespace)/\(secret.name)"] = secret } }
}

@Suite struct PodVolumesAndProbesTests {
    private func container(_ status: JSONValue, _ name: String) -> JSONValue? {
        status["containerStatuses"]?.arrayValue?.first { $0["name"] == .string(name) }
    }

    /// Probes and syncs every 100 ms until `condition` holds for the status (or 20 s pass).
    private func drive(_ worker: PodWorker, until condition: (JSONValue) -> Bool) async -> JSONValue {
        var status = JSONValue.null
        _ = await eventually(timeout: .seconds(20)) {
            await worker.probe()
            status = await worker.sync()
            return condition(status)
        }
        return status
    }

    private func mode(_ path: String) -> Int {
        ((try? FileManager.default.attributesOfItem(atPath: path)[.posixPermissions]) as? Int) ?? -1
    }

    @Test func configMapSecretEmptyDirAndHostPathVolumesAreMountedWithTheirModesAndFollowTheirSources() async throws {
        let directory = makeTemporaryDirectory()
        defer { removeTemporaryDirectory(directory) }
        let runtime = try ProcessRuntime(root: directory + "/containers")
        defer { for id in runtime.containers() { runtime.remove(id) } }
        let resources = ChangingResources()
        var config = Kube.ConfigMap(name: "app-config")
        config.data = ["greeting": "hello v1", "other": "not mounted"]
        resources.set(config)
        var secret = Kube.Secret(name: "creds")
        secret.data = ["password": Array("s3cret".utf8)]
        resources.set(secret)
        let mnt = directory + "/mnt"
        let pod = Kube.Pod(json: try JSONValue(parsing: """
            {"metadata":{"name":"vols","uid":"u-vols"},"spec":{"restartPolicy":"Always",
             "volumes":[{"name":"config","configMap":{"name":"app-config","items":[{"key":"greeting","path":"conf/greeting.txt","mode":384}]}},
                        {"name":"creds","secret":{"secretName":"creds","defaultMode":256}},
                        {"name":"shared","emptyDir":{}},
                        {"name":"host","hostPath":{"path":"\(directory)/host-data","type":"DirectoryOrCreate"}}],
             "containers":[{"name":"writer","image":"none","command":["/bin/sh","-c","echo from-writer > \(mnt)/w/shared/note; cat \(mnt)/w/creds/password > \(mnt)/w/host/copied; exec sleep 30"],
                            "volumeMounts":[{"name":"shared","mountPath":"\(mnt)/w/shared"},{"name":"creds","mountPath":"\(mnt)/w/creds"},{"name":"host","mountPath":"\(mnt)/w/host"}]},
                           {"name":"reader","image":"none","command":["/bin/sh","-c","while true; do cat \(mnt)/r/config/conf/greeting.txt; echo; cat \(mnt)/r/shared/note 2>/dev/null; sleep 0.1; done"],
                            "volumeMounts":[{"name":"config","mountPath":"\(mnt)/r/config"},{"name":"shared","mountPath":"\(mnt)/r/shared","readOnly":true}]}]}}
            """))
        let worker = PodWorker(pod: pod, runtime: runtime, resources: resources, podsRoot: directory + "/pods")
        let running = await drive(worker) { $0["phase"] == .string("Running") }
        #expect(running["phase"] == .string("Running"), "\(running)")
        let volumes = directory + "/pods/u-vols/volumes"
        #expect(mode(volumes + "/config/..data/conf/greeting.txt") == 0o600 && mode(volumes + "/creds/..data/password") == 0o400)
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: volumes + "/config/conf") == "..data/conf")
        #expect(!FileManager.default.fileExists(atPath: volumes + "/config/other"), "only the items asked for")
        let readerLog = runtime.logPath(of: ContainerID(podUID: "u-vols", name: "reader", attempt: 0))
        #expect(await eventually { (containerLogText(readerLog) ?? "").contains("hello v1\nfrom-writer\n") },
                "the reader sees the ConfigMap and what the writer put in the shared emptyDir")
        #expect(await eventually { (try? String(contentsOfFile: directory + "/host-data/copied", encoding: .utf8)) == "s3cret" }, "the hostPath is the host's directory")

        // An unchanged source is not rewritten; a changed one is swapped in while the reader reads.
        let before = try FileManager.default.destinationOfSymbolicLink(atPath: volumes + "/config/..data")
        await worker.sync()
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: volumes + "/config/..data") == before)
        config.data["greeting"] = "hello v2"
        resources.set(config)
        await worker.sync()
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: volumes + "/config/..data") != before)
        #expect(await eventually { ((try? String(contentsOfFile: readerLog, encoding: .utf8)) ?? "").contains("hello v2\n") }, "the update reached the running container")
        let log = (try? String(contentsOfFile: readerLog, encoding: .utf8)) ?? ""
        #expect(!log.contains("No such file"), "the swap is atomic: \(log)")

        await worker.terminate(gracePeriod: .seconds(2))
        await worker.remove()
        #expect(!FileManager.default.fileExists(atPath: directory + "/pods/u-vols") && runtime.containers().isEmpty)
        #expect(FileManager.default.fileExists(atPath: directory + "/host-data/copied"), "hostPath data is the host's and stays")
    }

    /// A projected volume merges its ConfigMap, Secret and downward API sources with its
    /// `defaultMode`, a downwardAPI volume holds pod fields (whole label maps as `key="value"`
    /// lines), both read-only in the container; a serviceAccountToken projection, which needs
    /// the cloud's TokenRequest, is the container's clear CreateContainerConfigError.
    @Test func projectedAndDownwardAPIVolumesHoldTheirSourcesAndPodFields() async throws {
        let directory = makeTemporaryDirectory()
        defer { removeTemporaryDirectory(directory) }
        let runtime = try ProcessRuntime(root: directory + "/containers")
        defer { for id in runtime.containers() { runtime.remove(id) } }
        let resources = ChangingResources()
        var config = Kube.ConfigMap(name: "kube-root-ca.crt", namespace: "edge-apps")
        config.data = ["ca.crt": "-----BEGIN CERTIFICATE-----"]
        resources.set(config)
        var secret = Kube.Secret(name: "creds", namespace: "edge-apps")
        secret.data = ["token": Array("t0ken".utf8)]
        resources.set(secret)
        let mnt = directory + "/mnt"
        let pod = Kube.Pod(json: try JSONValue(parsing: """
            {"metadata":{"name":"proj","namespace":"edge-apps","uid":"u-proj","labels":{"tier":"edge","app":"probe"}},
             "spec":{"nodeName":"edge-1","volumes":[
               {"name":"access","projected":{"defaultMode":288,"sources":[
                  {"configMap":{"name":"kube-root-ca.crt","items":[{"key":"ca.crt","path":"ca.crt"}]}},
                  {"secret":{"name":"creds"}},
                  {"downwardAPI":{"items":[{"path":"namespace","fieldRef":{"apiVersion":"v1","fieldPath":"metadata.namespace"}}]}}]}},
               {"name":"info","downwardAPI":{"items":[{"path":"labels","fieldRef":{"fieldPath":"metadata.labels"}},
                                                      {"path":"node","fieldRef":{"fieldPath":"spec.nodeName"},"mode":256}]}}],
              "containers":[{"name":"reader","image":"none","command":["/bin/sh","-c","cat \(mnt)/a/ca.crt \(mnt)/a/token \(mnt)/a/namespace \(mnt)/i/node; echo; touch \(mnt)/a/x 2>&1; exec sleep 30"],
                             "volumeMounts":[{"name":"access","mountPath":"\(mnt)/a"},{"name":"info","mountPath":"\(mnt)/i"}]}]}}
            """))
        let worker = PodWorker(pod: pod, runtime: runtime, resources: resources, podsRoot: directory + "/pods")
        let running = await drive(worker) { $0["phase"] == .string("Running") }
        #expect(running["phase"] == .string("Running"), "\(running)")
        let volumes = directory + "/pods/u-proj/volumes"
        #expect(mode(volumes + "/access/..data/token") == 0o440 && mode(volumes + "/access/..data/ca.crt") == 0o440, "the projection's defaultMode")
        #expect(try String(contentsOfFile: volumes + "/info/labels", encoding: .utf8) == "app=\"probe\"\ntier=\"edge\"")
        #expect(mode(volumes + "/info/..data/node") == 0o400)
        let log = runtime.logPath(of: ContainerID(podUID: "u-proj", name: "reader", attempt: 0))
        #expect(await eventually { (containerLogText(log) ?? "").contains("-----BEGIN CERTIFICATE-----t0kenedge-appsedge-1") },
                "\((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")")
        await worker.terminate(gracePeriod: .seconds(2))
        await worker.remove()

        let tokenPod = Kube.Pod(json: try JSONValue(parsing: """
            {"metadata":{"name":"tok","uid":"u-tok"},"spec":{"volumes":[{"name":"kube-api-access","projected":{"sources":[
               {"serviceAccountToken":{"path":"token","expirationSeconds":3607}}]}}],
             "containers":[{"name":"c","image":"none","command":["/bin/sh","-c","sleep 30"],"volumeMounts":[{"name":"kube-api-access","mountPath":"\(mnt)/t"}]}]}}
            """))
        // A worker without a token manager cannot fill a token projection.
        let tokenWorker = PodWorker(pod: tokenPod, runtime: runtime, resources: resources, podsRoot: directory + "/pods")
        let waiting = await drive(tokenWorker) { self.container($0, "c")?[path: ["state", "waiting", "reason"]] != nil }
        #expect(container(waiting, "c")?[path: ["state", "waiting", "reason"]] == .string("CreateContainerConfigError"), "\(waiting)")
        #expect(container(waiting, "c")?[path: ["state", "waiting", "message"]]?.stringValue?.contains("this Edged requests no service-account tokens") == true,
                "\(waiting)")
        await tokenWorker.remove()
    }

    @Test func anHTTPReadinessProbeMakesTheContainerReadyOnceItAnswers() async throws {
        let directory = makeTemporaryDirectory()
        defer { removeTemporaryDirectory(directory) }
        let runtime = try ProcessRuntime(root: directory + "/containers")
        defer { for id in runtime.containers() { runtime.remove(id) } }
        let port = freeLoopbackPort()
        let pod = Kube.Pod(json: try JSONValue(parsing: """
            {"metadata":{"name":"web","uid":"u-ready"},"spec":{"containers":[{"name":"web","image":"none",
              "command":["/bin/sh","-c","sleep 1; exec python3 -m http.server \(port) --bind 127.0.0.1"],"workingDir":"\(directory)",
              "ports":[{"name":"http","containerPort":\(port)}],
              "readinessProbe":{"httpGet":{"path":"/","port":"http"},"periodSeconds":1,"failureThreshold":1},
              "livenessProbe":{"tcpSocket":{"port":\(port)},"initialDelaySeconds":3,"periodSeconds":1}}]}}
            """))
        let worker = PodWorker(pod: pod, runtime: runtime)
        let first = await drive(worker) { $0["phase"] == .string("Running") }
        #expect(container(first, "web")?["ready"] == .bool(false), "not ready before the probe passes")
        let ready = await drive(worker) { self.container($0, "web")?["ready"] == .bool(true) }
        #expect(ready[path: ["conditions"]]?.arrayValue?.contains { $0["type"] == .string("Ready") && $0["status"] == .string("True") } == true, "\(ready)")
        // The liveness probe connects too: several periods later it has not restarted anything.
        try await Task.sleep(for: .seconds(4))
        let later = await drive(worker) { _ in true }
        #expect(container(later, "web")?["restartCount"] == .number("0") && container(later, "web")?["ready"] == .bool(true), "\(later)")
    }

    @Test func failingLivenessAndStartupProbesRestartTheContainer() async throws {
        let directory = makeTemporaryDirectory()
        defer { removeTemporaryDirectory(directory) }
        let runtime = try ProcessRuntime(root: directory + "/containers")
        defer { for id in runtime.containers() { runtime.remove(id) } }
        let closedPort = freeLoopbackPort()
        let pod = Kube.Pod(json: try JSONValue(parsing: """
            {"metadata":{"name":"sick","uid":"u-live"},"spec":{"terminationGracePeriodSeconds":1,"containers":[
              {"name":"unhealthy","image":"none","command":["/bin/sleep","60"],
               "livenessProbe":{"exec":{"command":["/bin/sh","-c","echo not healthy; exit 1"]},"periodSeconds":1,"failureThreshold":2}},
              {"name":"never-starts","image":"none","command":["/bin/sleep","60"],
               "startupProbe":{"tcpSocket":{"port":\(closedPort)},"periodSeconds":1,"failureThreshold":1},
               "livenessProbe":{"exec":{"command":["/bin/false"]},"periodSeconds":1,"failureThreshold":1}}]}}
            """))
        let worker = PodWorker(pod: pod, runtime: runtime, backoff: RestartBackoff(initial: .milliseconds(100)))
        let restarted = await drive(worker) { status in
            ["unhealthy", "never-starts"].allSatisfy { name in
                guard let count = self.container(status, name)?["restartCount"]?.int64Value else { return false }
                return count >= 1
            }
        }
        let unhealthy = container(restarted, "unhealthy")
        #expect(unhealthy?[path: ["lastState", "terminated", "message"]] == .string("Liveness probe failed: command exited with 1: not healthy\n"), "\(restarted)")
        #expect(unhealthy?[path: ["lastState", "terminated", "exitCode"]] == .number("143"), "SIGTERM ended it")
        let never = container(restarted, "never-starts")
        #expect(never?[path: ["lastState", "terminated", "message"]]?.stringValue?.hasPrefix("Startup probe failed: dial tcp 127.0.0.1:\(closedPort)") == true, "\(restarted)")
        #expect(never?["started"] == .bool(false) && never?["ready"] == .bool(false))
    }

    @Test func badPodSpecsGetAClearReasonAndNeverACrash() async throws {
        let directory = makeTemporaryDirectory()
        defer { removeTemporaryDirectory(directory) }
        let runtime = try ProcessRuntime(root: directory + "/containers")
        defer { for id in runtime.containers() { runtime.remove(id) } }
        var present = Kube.Secret(name: "present")
        present.data = ["k": Array("v".utf8)]
        let resources = StoredResources(secrets: ["default/present": present])
        func status(_ json: String) async throws -> JSONValue {
            await PodWorker(pod: Kube.Pod(json: try JSONValue(parsing: json)), runtime: runtime, resources: resources, podsRoot: directory + "/pods").sync()
        }
        let negative = try await status(#"{"metadata":{"name":"p","uid":"u-neg"},"spec":{"terminationGracePeriodSeconds":-5,"containers":[{"name":"c","image":"none","command":["/bin/sleep","30"]}]}}"#)
        #expect(negative["phase"] == .string("Failed") && negative["reason"] == .string("InvalidPodSpec"))
        #expect(negative["message"] == .string("terminationGracePeriodSeconds must not be negative (it is -5)"))
        let empty = try await status(#"{"metadata":{"name":"p","uid":"u-empty"},"spec":{"restartPolicy":"Sometimes","containers":[]}}"#)
        #expect(empty["message"] == .string("the pod has no containers; restartPolicy Sometimes is not Always, OnFailure or Never"))
        #expect(runtime.containers().isEmpty, "nothing of a rejected pod starts")

        let cases: [(spec: String, message: String)] = [
            (#""volumeMounts":[{"name":"nope","mountPath":"/data"}]"#, #"volumeMount "nope" refers to no volume of the pod"#),
            (#""volumeMounts":[{"name":"nfs","mountPath":"/data"}]"#, #"volume "nfs": nfs volumes are not supported by Edged (configMap, secret, emptyDir, hostPath, downwardAPI and projected are)"#),
            (#""volumeMounts":[{"name":"file","mountPath":"/data"}]"#, #"volume "file": hostPath type check failed: /no/such/file is not a file"#),
            (#""volumeMounts":[{"name":"cm","mountPath":"/data"}]"#, #"volume "cm": configmap "absent" not found"#),
            (#""volumeMounts":[{"name":"scratch","mountPath":"relative"}]"#, #"volumeMount "scratch" needs an absolute mountPath"#),
            (#""resources":{"limits":{"memory":"lots"}}"#, "resources.limits.memory: lots is not a quantity"),
            (#""readinessProbe":{"httpGet":{"port":"nope"}}"#, #"readinessProbe: httpGet probe port "nope" is not a port of the container"#),
            (#""volumeMounts":[{"name":"escape","mountPath":"/data"}]"#, #"volume "escape": item path ../../etc/evil must be a relative path inside the volume"#),
            (#""volumeMounts":[{"name":"scratch","mountPath":"/data","subPath":"../.."}]"#, #"volumeMount "scratch": subPath ../.. must be a relative path inside the volume"#),
        ]
        for (index, test) in cases.enumerated() {
            let result = try await status("""
                {"metadata":{"name":"p","uid":"u-bad-\(index)"},"spec":{
                  "volumes":[{"name":"nfs","nfs":{"server":"x","path":"/"}},{"name":"file","hostPath":{"path":"/no/such/file","type":"File"}},
                             {"name":"cm","configMap":{"name":"absent"}},{"name":"scratch","emptyDir":{}},
                             {"name":"escape","secret":{"secretName":"present","items":[{"key":"k","path":"../../etc/evil"}]}}],
                  "containers":[{"name":"bad","image":"none","command":["/bin/sleep","30"],\(test.spec)},
                                {"name":"good","image":"none","command":["/bin/sleep","30"]}]}}
                """)
            let waiting = container(result, "bad")?[path: ["state", "waiting"]]
            #expect(waiting?["reason"] == .string("CreateContainerConfigError") && waiting?["message"] == .string(test.message), "\(result)")
            #expect(container(result, "good")?[path: ["state", "running"]] != nil, "the rest of the pod runs")
        }
    }
}
