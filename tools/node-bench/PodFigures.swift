// pods: Edged's figures. The time from the cloud sending N pod messages to the cloud holding a
// Running status for each (CloudHub → channel → EdgeHub → MetaManager → Edged → container-shim
// → status back), beside the same N containers started directly on the process runtime, and
// plain fork/exec of the same program, in the same run; edgecore's RSS idle and with N pods.
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
        let directory = makeDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let hub = try CloudHub(configuration: CloudHubConfiguration(
            certificatesDirectory: directory + "/cloud", outboxPath: directory + "/cloud.db", bindAddress: "127.0.0.1",
            webSocketPort: 0, quicPort: 0, httpsPort: 0))
        let ports = try await hub.start()
        _ = try hub.issueNodeCredentials(for: "edge-1", in: directory + "/certs")
        let edgecore = try await startEdgecore(directory: directory, hub: hub, ports: ports, eventBus: "{enable: false}")
        let runtime = try ProcessRuntime(root: directory + "/edged/containers")
        defer {
            kill(edgecore.processIdentifier, SIGKILL)
            for id in runtime.containers() { runtime.remove(id) }
        }
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
            let pod = #"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"bench-\#(index)","namespace":"default","uid":"uid-bench-\#(index)","resourceVersion":"1"},"spec":{"nodeName":"edge-1","terminationGracePeriodSeconds":1,"containers":[{"name":"app","image":"none","command":["/bin/sleep","3600"]}]}}"#
            try await hub.send(Message(router: MessageRouter(source: "edgecontroller", group: "resource", operation: "insert", resource: "default/pod/bench-\(index)"),
                                       content: ByteBuffer(string: pod)), to: "edge-1", on: .state, delivery: .reliable)
        }
        while running.withLock({ $0.count }) < pods {
            guard ContinuousClock.now < started + .seconds(120) else { throw BenchError("only \(running.withLock { $0.count }) of \(pods) pods ran") }
            try await Task.sleep(for: .milliseconds(10))
        }
        let toRunning = (ContinuousClock.now - started).seconds
        try await Task.sleep(for: .seconds(5))
        let loaded = residentBytes(pid: edgecore.processIdentifier)
        let shims = runtime.containers().compactMap { id -> Double? in
            guard let state = try? Data(contentsOf: URL(fileURLWithPath: runtime.root + "/\(id)/state.json")),
                  let pid = (try? JSONSerialization.jsonObject(with: state) as? [String: Any])?["pid"] as? Int else { return nil }
            return Double(residentBytes(pid: Int32(pid)))
        }
        kill(edgecore.processIdentifier, SIGKILL)
        await hub.stop()
        for id in runtime.containers() { runtime.remove(id) }

        // Baselines: the runtime alone, then fork/exec alone.
        let direct = try ProcessRuntime(root: directory + "/direct")
        let directStart = ContinuousClock.now
        for index in 0..<pods { try direct.start(ContainerLaunch(id: ContainerID(podUID: "uid-direct-\(index)", name: "app", attempt: 0), command: ["/bin/sleep", "3600"])) }
        let directSeconds = (ContinuousClock.now - directStart).seconds
        for id in direct.containers() { direct.remove(id) }
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

        print(String(format: "pods from the cloud's message to a Running status at the cloud: %d pods in %.2f s (%.1f ms per pod)", pods, toRunning, toRunning * 1000 / Double(pods)))
        print(String(format: "baselines, same run: the process runtime starting %d containers directly %.2f s; fork/exec of %d processes %.2f s; ratios %.1f and %.1f",
                     pods, directSeconds, pods, forkSeconds, toRunning / directSeconds, toRunning / forkSeconds))
        let idleMB = Double(idle) / 1e6
        let loadedMB = Double(loaded) / 1e6
        let shimMB: Double = shims.isEmpty ? 0 : shims.reduce(0, +) / Double(shims.count) / 1e6
        print(String(format: "edgecore RSS: %.1f MB with no pods; %.1f MB with %d running (+%.1f MB); each container-shim %.2f MB on average",
                     idleMB, loadedMB, pods, loadedMB - idleMB, shimMB))
    }
}
