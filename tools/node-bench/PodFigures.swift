// pods: Edged's figures. The time from the cloud sending N pod messages to the cloud holding a
// Running status for each (CloudHub → channel → EdgeHub → MetaManager → Edged → runtime →
// status back), beside the same N containers started directly on the same runtime (and, for
// the process runtime, plain fork/exec of the same program) in the same run; edgecore's RSS
// idle and with N pods. With --cri-endpoint the same figures follow for containerd.
import BenchSupport
import CloudHub
import Foundation
import KubeModel
import NIOCore
import Node
import Synchronization
import Transport

extension NodeBench {
    func podFigures() async throws {
        try await podFigures(cri: nil)
        if let criEndpoint { try await podFigures(cri: criEndpoint) }
    }

    /// The figures for the process runtime (`cri` nil) or the CRI runtime at `cri`.
    private func podFigures(cri: String?) async throws {
        let directory = makeDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let hub = try CloudHub(configuration: CloudHubConfiguration(
            certificatesDirectory: directory + "/cloud", outboxPath: directory + "/cloud.db", bindAddress: "127.0.0.1",
            webSocketPort: 0, quicPort: 0, httpsPort: 0))
        let ports = try await hub.start()
        _ = try hub.issueNodeCredentials(for: "edge-1", in: directory + "/certs")
        let runtime: any ContainerRuntime
        let container: String
        if let cri {
            runtime = try CRIRuntime(endpoint: cri, logRoot: directory + "/edged/logs")
            container = #""hostNetwork":true,"containers":[{"name":"app","image":"\#(criImage)","imagePullPolicy":"Never"}]"#
        } else {
            runtime = try ProcessRuntime(root: directory + "/edged/containers")
            container = #""containers":[{"name":"app","image":"none","command":["/bin/sleep","3600"]}]"#
        }
        let edgecore = try await startEdgecore(directory: directory, hub: hub, ports: ports, eventBus: "{enable: false}",
                                               edged: cri.map { "containerRuntime: remote, remoteRuntimeEndpoint: \"\($0)\"" } ?? "")
        try await Task.sleep(for: .seconds(3))
        let idle = residentBytes(pid: edgecore.processIdentifier)

        let running = Mutex<Set<String>>([])
        let watcher = Task {
            for await incoming in hub.incoming where incoming.message.router.resource.contains("/podstatus/") {
                guard let json = try? JSONValue(parsing: String(buffer: incoming.message.content)),
                      json[path: ["status", "phase"]] == .string("Running"), let name = json[path: ["metadata", "name"]]?.stringValue else { continue }
                running.withLock { _ = $0.insert(name) }
            }
        }
        defer { watcher.cancel() }
        let started = ContinuousClock.now
        for index in 0..<pods {
            let pod = #"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"bench-\#(index)","namespace":"default","uid":"uid-bench-\#(index)","resourceVersion":"1"},"spec":{"nodeName":"edge-1","terminationGracePeriodSeconds":1,\#(container)}}"#
            try await hub.send(Message(router: MessageRouter(source: "edgecontroller", group: "resource", operation: "insert", resource: "default/pod/bench-\(index)"),
                                       content: ByteBuffer(string: pod)), to: "edge-1", on: .state, delivery: .reliable)
        }
        var failure: (any Error)?
        while running.withLock({ $0.count }) < pods {
            guard ContinuousClock.now < started + .seconds(300) else {
                failure = BenchError("only \(running.withLock { $0.count }) of \(pods) pods ran")
                break
            }
            try await Task.sleep(for: .milliseconds(10))
        }
        let toRunning = (ContinuousClock.now - started).seconds
        if failure == nil { try await Task.sleep(for: .seconds(5)) }
        let loaded = residentBytes(pid: edgecore.processIdentifier)
        let shims = cri != nil ? [] : await runtime.containers().compactMap { id -> Double? in
            guard let state = try? Data(contentsOf: URL(fileURLWithPath: directory + "/edged/containers/\(id)/state.json")),
                  let pid = (try? JSONSerialization.jsonObject(with: state) as? [String: Any])?["pid"] as? Int else { return nil }
            return Double(residentBytes(pid: Int32(pid)))
        }
        kill(edgecore.processIdentifier, SIGKILL)
        await hub.stop()
        await removeAll(runtime)
        if let failure { throw failure }

        // Baselines: the runtime alone, then (for processes) fork/exec alone.
        let direct: any ContainerRuntime = try cri.map { try CRIRuntime(endpoint: $0, logRoot: directory + "/direct") } ?? ProcessRuntime(root: directory + "/direct")
        let directStart = ContinuousClock.now
        for index in 0..<pods {
            let uid = "uid-direct-\(index)"
            _ = try await direct.start(ContainerLaunch(
                id: ContainerID(podUID: uid, name: "app", attempt: 0), command: cri == nil ? ["/bin/sleep", "3600"] : [],
                image: criImage, imagePullPolicy: "Never", pod: ContainerPod(name: "direct-\(index)", namespace: "default", uid: uid, hostNetwork: true)))
        }
        let directSeconds = (ContinuousClock.now - directStart).seconds
        await removeAll(direct)
        let name = cri == nil ? "the process runtime" : "containerd over CRI"
        print(String(format: "pods in %@ from the cloud's message to a Running status at the cloud: %d pods in %.2f s (%.1f ms per pod)",
                     name, pods, toRunning, toRunning * 1000 / Double(pods)))
        if cri == nil {
            let forkStart = ContinuousClock.now
            var children: [Process] = []
            for _ in 0..<pods {
                let child = Process()
                child.executableURL = URL(fileURLWithPath: "/bin/sleep")
                child.arguments = ["3600"]
                try child.run()
                children.append(child)
            }
            let forkSeconds = (ContinuousClock.now - forkStart).seconds
            for child in children { kill(child.processIdentifier, SIGKILL) }
            print(String(format: "baselines, same run: the process runtime starting %d containers directly %.2f s; fork/exec of %d processes %.2f s; ratios %.1f and %.1f",
                         pods, directSeconds, pods, forkSeconds, toRunning / directSeconds, toRunning / forkSeconds))
        } else {
            print(String(format: "baseline, same run: CRIRuntime alone starting %d pods (sandbox, create, start) %.2f s; ratio %.2f",
                         pods, directSeconds, toRunning / directSeconds))
        }
        let idleMB = Double(idle) / 1e6
        let loadedMB = Double(loaded) / 1e6
        let shimMB: Double = shims.isEmpty ? 0 : shims.reduce(0, +) / Double(shims.count) / 1e6
        print(String(format: "edgecore RSS (%@): %.1f MB with no pods; %.1f MB with %d running (+%.1f MB)%@", name, idleMB, loadedMB, pods, loadedMB - idleMB,
                     shims.isEmpty ? "" : String(format: "; each container-shim %.2f MB on average", shimMB)))
    }

    /// Stops and removes every container and pod the runtime holds.
    private func removeAll(_ runtime: any ContainerRuntime) async {
        let containers = await runtime.containers()
        for id in containers {
            await runtime.stop(id, gracePeriod: .zero)
            await runtime.remove(id)
        }
        for pod in await runtime.pods() { await runtime.removePod(pod) }
    }
}
