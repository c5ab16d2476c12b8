// Edge nodes simulated in this process for the workload figures: an EdgeHub each whose
// MetaManager answers as a kubelet would, at once: the node's status (Ready, 8 CPUs, 32 GiB,
// 110 pods) when it joins, and for every pod it is sent, a status Running and Ready.
import BenchSupport
import EdgeHub
import Foundation
import NIOCore
import Synchronization
import Transport

final class SimulatedKubelets: Sendable {
    let names: [String]
    private let hubs: [EdgeHub]
    private let endpoints: [BusEndpoint]
    private let running = Mutex<[Task<Void, Never>]>([])
    /// When each pod (by uid) first reached its simulated kubelet.
    let arrivals = Arrivals()

    final class Arrivals: Sendable {
        let byUID = Mutex<[String: ContinuousClock.Instant]>([:])
    }

    init(count: Int, prefix: String, rig: CloudCoreRig, token: String) throws {
        names = (0..<count).map { "\(prefix)-\($0)" }
        var hubs: [EdgeHub] = []
        var endpoints: [BusEndpoint] = []
        for name in names {
            let bus = MessageBus()
            endpoints.append(bus.register(module: "metaManager", group: "meta"))
            hubs.append(try EdgeHub(configuration: EdgeHubConfiguration(
                nodeName: name, cloudHost: "127.0.0.1", certificatesDirectory: rig.directory + "/edges/\(name)", token: token,
                quicPort: rig.quicPort, webSocketPort: rig.webSocketPort, httpsPort: rig.httpsPort, preferQUIC: true,
                initialBackoff: .milliseconds(100), maxBackoff: .seconds(1)), bus: bus))
        }
        self.hubs = hubs
        self.endpoints = endpoints
    }

    /// Connects every node (50 at a time), reports its status, and answers pods from then on.
    func start() async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (index, hub) in hubs.enumerated() {
                if index >= 50 { try await group.next() }
                let (name, endpoint) = (names[index], endpoints[index])
                group.addTask { [self] in
                    running.withLock { $0.append(Task { await hub.run() }) }
                    running.withLock { $0.append(Task { [arrivals] in await Self.answer(endpoint, arrivals: arrivals) }) }
                    try await hub.channel.waitUntilConnected(timeout: .seconds(120))
                    try await endpoint.send(Self.nodeStatus(name), toGroup: "hub", on: .state)
                }
            }
            try await group.waitForAll()
        }
    }

    private static func nodeStatus(_ name: String) -> Message {
        let now = Date().formatted(.iso8601)
        let resources = #"{"cpu":"8","memory":"32Gi","pods":"110"}"#
        let body = """
            {"apiVersion":"v1","kind":"Node","metadata":{"name":"\(name)"},"status":{"conditions":[{"type":"Ready","status":"True",
            "reason":"EdgeReady","lastHeartbeatTime":"\(now)"}],"capacity":\(resources),"allocatable":\(resources)}}
            """
        return Message(router: MessageRouter(source: "edged", destination: "metaManager", group: "meta", operation: "update",
                                             resource: "default/nodestatus/\(name)"), content: ByteBuffer(string: body))
    }

    /// For each pod that arrives, its status Running and Ready, at once.
    private static func answer(_ endpoint: BusEndpoint, arrivals: Arrivals) async {
        var answered: Set<String> = []
        for await message in endpoint.messages(on: .state) {
            let parts = message.router.resource.split(separator: "/")
            guard parts.count == 3, parts[1] == "pod", message.router.operation != "delete",
                  let pod = try? JSONSerialization.jsonObject(with: Data(message.content.readableBytesView)) as? [String: Any],
                  let metadata = pod["metadata"] as? [String: Any], let uid = metadata["uid"] as? String, answered.insert(uid).inserted else { continue }
            let arrived = ContinuousClock.now
            arrivals.byUID.withLock { $0[uid] = arrived }
            let now = Date().formatted(.iso8601)
            let body = """
                {"apiVersion":"v1","kind":"Pod","metadata":{"name":"\(parts[2])","namespace":"\(parts[0])","uid":"\(uid)"},
                "status":{"phase":"Running","startTime":"\(now)","conditions":[{"type":"Ready","status":"True","lastTransitionTime":"\(now)"}]}}
                """
            let status = Message(router: MessageRouter(source: "edged", destination: "metaManager", group: "meta", operation: "update",
                                                       resource: "\(parts[0])/podstatus/\(parts[2])"), content: ByteBuffer(string: body))
            try? await endpoint.send(status, toGroup: "hub", on: .state)
        }
    }

    func stop() async {
        let tasks = running.withLock { running in defer { running = [] }; return running }
        for task in tasks { task.cancel() }
        for task in tasks { await task.value }
    }
}
