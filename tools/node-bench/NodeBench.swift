// node-bench: the edge modules' figures, each beside a baseline measured in the same run.
//   twin: twin updates per second from MQTT through EventBus, DeviceTwin, EdgeHub and the channel
//         to CloudHub, beside the broker's own pub→sub rate with the same client and window.
//   meta: MetaManager writes and reads per second through the bus, beside raw SQLite doing the
//         same upserts and point reads on a file with the same settings.
//   rss:  edgecore's resident memory idle, with no devices and then with 1,000.
//   pods: Edged: pod messages to Running statuses, and edgecore's memory with the pods running.
import ArgumentParser
import BenchSupport
import CloudHub
import EdgeHub
import Foundation
import Logging
import NIOCore
import NIOPosix
import Node
import Storage
import Synchronization
import Transport

@main
struct NodeBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "node-bench",
        abstract: "Edge module throughput and memory against same-run baselines (run it with -c release).")

    enum Scenario: String, ExpressibleByArgument, CaseIterable { case twin, meta, rss, pods, all }

    @Option(help: "Which figures: twin, meta, rss, pods or all.")
    var only: Scenario = .all
    @Option(help: "Twin updates published.")
    var updates = 200_000
    @Option(help: "Devices bound to the node.")
    var devices = 1000
    @Flag(help: "Coalesce reports per device (the default in edgecore; off measures every report).")
    var coalesce = false
    @Option(help: "Updates in flight between the device and the cloud at most.")
    var window = 2000
    @Option(help: "MetaManager writes and reads.")
    var operations = 20_000
    @Option(help: "Pods run by Edged.")
    var pods = 100
    @Option(help: "Also measure pods in a CRI runtime at this endpoint (unix:///path/containerd.sock); its image must be present.")
    var criEndpoint: String?
    @Option(help: "The image of the pods run over CRI (its default command must keep running).")
    var criImage = "localhost/edged-busybox:1"

    func run() async throws {
        bootstrapBenchLogging(level: .error)
        if only == .twin || only == .all { try await twinFigures() }
        if only == .meta || only == .all { try await metaFigures() }
        if only == .rss || only == .all { try await rssFigures() }
        if only == .pods || only == .all { try await podFigures() }
    }

    // MARK: twin

    func twinFigures() async throws {
        let directory = makeDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let broker = try Broker()
        defer { broker.stop() }
        let baseline = try await mqttBaseline(port: broker.port)
        let rig = try await TwinRig(directory: directory, brokerPort: broker.port, devices: devices, coalesce: coalesce)
        let startCPU = cpuSeconds()
        let rate = try await rig.measure(updates: updates, window: window)
        let cpu = cpuSeconds() - startCPU
        await rig.stop()
        print(String(format: "twin updates MQTT→cloud: %.0f /s (%d updates, %d devices, coalescing %@, window %d, %.0f%% CPU of one core)",
                     rate.perSecond, updates, devices, coalesce ? "on" : "off", window, cpu / rate.seconds * 100))
        print(String(format: "baseline mosquitto pub→sub, same client and window: %.0f /s; ratio %.2f", baseline, rate.perSecond / baseline))
        // Every update is 1 MQTT message in and, as KubeEdge does, its result, document and delta
        // out again: compare what the broker carried (each baseline message is 2 broker hops).
        print(String(format: "MQTT messages through the broker: %.0f /s on the twin path; %.0f /s in the baseline; ratio %.2f",
                     rate.brokerMessagesPerSecond, baseline * 2, rate.brokerMessagesPerSecond / (baseline * 2)))
        if coalesce { print("  reports reaching the cloud: \(rate.received) (coalesced per device while unacknowledged)") }
    }

    /// Messages per second one MQTTClient publishes to another through the broker (QoS 0).
    func mqttBaseline(port: Int) async throws -> Double {
        let subscriber = try MQTTClient(clientID: "bench-sub")
        try await subscriber.connect(host: "127.0.0.1", port: port)
        guard await subscriber.waitForAcknowledgement(try subscriber.subscribe("bench/#", qos: 0)) else { throw BenchError("no SUBACK") }
        let publisher = try MQTTClient(clientID: "bench-pub")
        try await publisher.connect(host: "127.0.0.1", port: port)
        let received = Atomic<Int>(0)
        let counter = Task {
            for await _ in subscriber.messages {
                if received.add(1, ordering: .relaxed).newValue == updates { return }
            }
        }
        let payload = ByteBuffer(string: #"{"event_id":"","twin":{"temperature":{"actual":{"value":"000000"}}}}"#)
        let started = ContinuousClock.now
        for index in 0..<updates {
            while index - received.load(ordering: .relaxed) >= window { await Task.yield() }
            _ = try publisher.publish("bench/\(index % devices)", payload: payload, qos: 0)
        }
        await counter.value
        let seconds = (ContinuousClock.now - started).seconds
        publisher.close()
        subscriber.close()
        return Double(updates) / seconds
    }

    // MARK: meta

    func metaFigures() async throws {
        let directory = makeDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let pod = { @Sendable (index: Int) in
            #"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"pod-\#(index)","namespace":"default","resourceVersion":"\#(index + 1)","uid":"\#(UUID().uuidString)"},"spec":{"nodeName":"edge-1","containers":[{"name":"app","image":"registry.local/app:1.0","args":["--port","8080"],"resources":{"limits":{"cpu":"100m","memory":"64Mi"}}}]},"status":{"phase":"Pending"}}"#
        }
        // Baseline: the same upserts as single-row transactions, then point reads, straight on
        // SQLite (on the database's thread, as the store's own statements run).
        let raw = try Database(path: directory + "/raw.db")
        let operations = operations
        let (rawWrites, rawReads) = try await raw.exclusive { (db) throws -> (Double, Double) in
            try db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, type TEXT, value TEXT)")
            var started = ContinuousClock.now
            for index in 0..<operations {
                try db.transaction { () throws(SQLiteError) in
                    let upsert = try db.statement("INSERT INTO meta(key, type, value) VALUES (?, 'pod', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value")
                    upsert.bind("default/pod/pod-\(index)", at: 1)
                    upsert.bind(pod(index), at: 2)
                    try upsert.run()
                }
            }
            let writes = Double(operations) / (ContinuousClock.now - started).seconds
            started = ContinuousClock.now
            for index in 0..<operations {
                let read = try db.statement("SELECT value FROM meta WHERE key = ?")
                read.bind("default/pod/pod-\(index % operations)", at: 1)
                guard try read.step(), read.string(at: 0) != nil else { throw BenchError("raw read missed") }
                read.reset()
            }
            return (writes, Double(operations) / (ContinuousClock.now - started).seconds)
        }
        await raw.close()
        var started = ContinuousClock.now

        // MetaManager through the bus: cloud writes reported handled once stored, then queries.
        let bus = MessageBus()
        let store = try MetaStore(configuration: .init(path: directory + "/meta.db"))
        let meta = MetaManager(store: store, bus: bus)
        let metaRunning = Task { await meta.run() }
        let cloud = bus.register(module: "bench-cloud", group: "bench")
        let handled = Atomic<Int>(0)
        started = ContinuousClock.now
        for index in 0..<operations {
            let message = Message(
                router: MessageRouter(source: "edgecontroller", group: "resource", operation: "insert", resource: "default/pod/pod-\(index)"),
                content: ByteBuffer(string: pod(index)))
            try await cloud.send(message, toGroup: MetaManager.moduleGroup, on: .state) { handled.add(1, ordering: .relaxed) }
        }
        while handled.load(ordering: .relaxed) < operations { try await Task.sleep(for: .milliseconds(1)) }
        let writes = Double(operations) / (ContinuousClock.now - started).seconds
        let edged = bus.register(module: "edged", group: "edged")
        started = ContinuousClock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            for worker in 0..<32 {
                group.addTask {
                    for index in stride(from: worker, to: operations, by: 32) {
                        let query = Message(router: MessageRouter(source: "edged", destination: MetaManager.moduleName, group: "meta", operation: "query",
                                                                  resource: "default/pod/pod-\(index)"))
                        let answer = try await edged.request(query, on: .request, timeout: .seconds(30))
                        guard answer.router.operation == MessageRouter.Operation.response else { throw BenchError("query failed: \(String(buffer: answer.content))") }
                    }
                }
            }
            try await group.waitForAll()
        }
        let reads = Double(operations) / (ContinuousClock.now - started).seconds
        metaRunning.cancel()
        await metaRunning.value
        print(String(format: "MetaManager writes (bus → SQLite, handled): %.0f /s; raw SQLite upserts: %.0f /s; ratio %.2f", writes, rawWrites, writes / rawWrites))
        print(String(format: "MetaManager reads (bus query → answer, 32 callers): %.0f /s; raw SQLite point reads: %.0f /s; ratio %.2f", reads, rawReads, reads / rawReads))
    }

    // MARK: rss

    func rssFigures() async throws {
        let directory = makeDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let broker = try Broker()
        defer { broker.stop() }
        let hub = try CloudHub(configuration: CloudHubConfiguration(
            certificatesDirectory: directory + "/cloud", outboxPath: directory + "/cloud.db", bindAddress: "127.0.0.1",
            webSocketPort: 0, quicPort: 0, httpsPort: 0))
        let ports = try await hub.start()
        _ = try hub.issueNodeCredentials(for: "edge-1", in: directory + "/certs")
        let edgecore = try await startEdgecore(directory: directory, hub: hub, ports: ports, eventBus: #"{mqttServerExternal: "tcp://127.0.0.1:\#(broker.port)"}"#)
        defer { kill(edgecore.processIdentifier, SIGKILL) }
        let deadline = ContinuousClock.now + .seconds(30)
        try await Task.sleep(for: .seconds(5))
        let idle = residentBytes(pid: edgecore.processIdentifier)
        let idleParts = memoryParts(pid: edgecore.processIdentifier)
        for index in 0..<devices {
            let device = #"{"apiVersion":"devices.kubeedge.io/v1beta1","kind":"Device","metadata":{"name":"sensor-\#(index)","namespace":"default"},"spec":{"deviceModelRef":{"name":"thermometer"},"nodeName":"edge-1","properties":[{"name":"temperature","desired":{"value":"20"}},{"name":"humidity","desired":{"value":"40"}}]}}"#
            try await hub.send(Message(router: MessageRouter(source: "devicecontroller", group: "twin", operation: "insert", resource: "default/device/sensor-\(index)"),
                                       content: ByteBuffer(string: device)), to: "edge-1", on: .state, delivery: .reliable)
        }
        while hub.channel(of: "edge-1")?.statistics(for: .state).unacknowledged ?? 1 > 0 {
            guard ContinuousClock.now < deadline + .seconds(60) else { throw BenchError("devices were not all stored") }
            try await Task.sleep(for: .milliseconds(100))
        }
        try await Task.sleep(for: .seconds(5))
        let loaded = residentBytes(pid: edgecore.processIdentifier)
        let loadedParts = memoryParts(pid: edgecore.processIdentifier)
        await hub.stop()
        print(String(format: "edgecore RSS idle: %.1f MB with no devices; %.1f MB with %d devices bound (+%.1f MB)",
                     Double(idle) / 1e6, Double(loaded) / 1e6, devices, Double(loaded - idle) / 1e6))
        print(String(format: "  of which anonymous (heap, stacks): %.1f MB → %.1f MB; file-backed (code of the binary and shared libraries): %.1f MB → %.1f MB",
                     idleParts.anonymous / 1e6, loadedParts.anonymous / 1e6, idleParts.file / 1e6, loadedParts.file / 1e6))
    }

    /// edgecore joined to `hub` as edge-1, everything under `directory`; returns once connected.
    func startEdgecore(directory: String, hub: CloudHub, ports: CloudHub.Ports, eventBus: String, edged: String = "") async throws -> Process {
        let config = """
            database: {dataSource: \(directory)/edgecore.db}
            modules:
              edgeHub:
                httpServer: https://127.0.0.1:\(ports.https)
                quic: {server: "127.0.0.1:\(ports.quic)"}
                websocket: {server: "127.0.0.1:\(ports.webSocket)"}
                certificatesDirectory: \(directory)/certs
                outbox: \(directory)/outbox.db
              eventBus: \(eventBus)
              metaManager: {metaServer: {server: "127.0.0.1:\(freePort())"}}
              edged: {hostnameOverride: edge-1, rootDirectory: \(directory)/edged\(edged.isEmpty ? "" : ", " + edged)}
            metrics: {server: "127.0.0.1:\(freePort())"}

            """
        try config.write(toFile: directory + "/edgecore.yaml", atomically: true, encoding: .utf8)
        let binary = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("edgecore").path
        let edgecore = Process()
        edgecore.executableURL = URL(fileURLWithPath: binary)
        edgecore.arguments = ["--config", directory + "/edgecore.yaml"]
        edgecore.standardError = FileHandle.nullDevice
        try edgecore.run()
        let deadline = ContinuousClock.now + .seconds(30)
        while hub.connection(of: "edge-1") == nil {
            guard ContinuousClock.now < deadline else {
                kill(edgecore.processIdentifier, SIGKILL)
                throw BenchError("edgecore did not connect")
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        return edgecore
    }

    func makeDirectory() -> String {
        let path = NSTemporaryDirectory() + "node-bench-\(UUID().uuidString)"
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }
}

/// The twin path: broker → EventBus → DeviceTwin → EdgeHub → channel → CloudHub.
struct TwinRig {
    let hub: CloudHub
    let bus = MessageBus()
    let eventBus: EventBus
    let twin: DeviceTwin
    let edgeHub: EdgeHub
    /// The modules' `run()`s (DeviceTwin, EventBus, EdgeHub).
    private var running: [Task<Void, Never>] = []
    let brokerPort: Int
    let devices: Int

    init(directory: String, brokerPort: Int, devices: Int, coalesce: Bool) async throws {
        self.brokerPort = brokerPort
        self.devices = devices
        hub = try CloudHub(configuration: CloudHubConfiguration(
            certificatesDirectory: directory + "/cloud", outboxPath: directory + "/cloud.db", bindAddress: "127.0.0.1",
            webSocketPort: 0, quicPort: 0, httpsPort: 0))
        let ports = try await hub.start()
        _ = try hub.issueNodeCredentials(for: "edge-1", in: directory + "/certs")
        twin = DeviceTwin(configuration: .init(nodeName: "edge-1", coalesceReports: coalesce), store: try DeviceStore(path: directory + "/edge.db"), bus: bus)
        eventBus = try EventBus(configuration: .init(nodeName: "edge-1", port: brokerPort), bus: bus)
        edgeHub = try EdgeHub(configuration: EdgeHubConfiguration(
            nodeName: "edge-1", cloudHost: "127.0.0.1", certificatesDirectory: directory + "/certs", outboxPath: directory + "/outbox.db",
            quicPort: ports.quic, webSocketPort: ports.webSocket, httpsPort: ports.https), bus: bus)
        let twin = twin, eventBus = eventBus, edgeHub = edgeHub
        running = [Task { await twin.run() }, Task { try? await eventBus.run() }, Task { await edgeHub.run() }]
        try await edgeHub.channel.waitUntilConnected(timeout: .seconds(20))
        for index in 0..<devices {
            let device = #"{"spec":{"properties":[{"name":"temperature","desired":{"value":"20"}}]}}"#
            try await hub.send(Message(router: MessageRouter(source: "devicecontroller", group: "twin", operation: "insert", resource: "default/device/d\(index)"),
                                       content: ByteBuffer(string: device)), to: "edge-1", on: .state, delivery: .reliable)
        }
        let deadline = ContinuousClock.now + .seconds(60)
        while twin.store.count < devices {
            guard ContinuousClock.now < deadline else { throw BenchError("devices were not bound") }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// Publishes `updates` twin updates with at most `window` not yet seen by the cloud.
    func measure(updates: Int, window: Int) async throws -> (perSecond: Double, seconds: Double, received: Int, brokerMessagesPerSecond: Double) {
        let before = eventBus.statistics
        let publisher = try MQTTClient(clientID: "bench-device")
        try await publisher.connect(host: "127.0.0.1", port: brokerPort)
        let received = Atomic<Int>(0)
        let processed = Atomic<Int>(0)
        let hub = hub
        let counter = Task {
            for await message in hub.incoming where message.message.router.resource.contains("/devicestatus/") {
                received.add(1, ordering: .relaxed)
            }
        }
        let started = ContinuousClock.now
        for index in 0..<updates {
            while index - Int(twin.statistics.updates) >= window { try await Task.sleep(for: .microseconds(50)) }
            let payload = ByteBuffer(string: #"{"twin":{"temperature":{"actual":{"value":"\#(index)"}}}}"#)
            _ = try publisher.publish("$hw/events/device/d\(index % devices)/twin/update", payload: payload, qos: 0)
        }
        // Done when DeviceTwin applied every update and the cloud has every report it will get.
        let deadline = ContinuousClock.now + .seconds(120)
        while twin.statistics.updates < updates || edgeHub.channel.statistics(for: .events).unacknowledged > 0
            || edgeHub.channel.statistics(for: .state).unacknowledged > 0 {
            guard ContinuousClock.now < deadline else {
                throw BenchError("stalled: \(twin.statistics.updates) applied, \(received.load(ordering: .relaxed)) at the cloud; eventbus \(eventBus.statistics)")
            }
            try await Task.sleep(for: .milliseconds(5))
        }
        let seconds = (ContinuousClock.now - started).seconds
        let after = eventBus.statistics
        let brokerMessages = updates + (after.fromBroker - before.fromBroker) + (after.toBroker - before.toBroker)
        processed.store(updates, ordering: .relaxed)
        try await Task.sleep(for: .milliseconds(200))
        counter.cancel()
        publisher.close()
        return (Double(updates) / seconds, seconds, received.load(ordering: .relaxed), Double(brokerMessages) / seconds)
    }

    /// Stops the modules in reverse order of starting them, then the cloud.
    func stop() async {
        for module in running.reversed() {
            module.cancel()
            await module.value
        }
        await hub.stop()
    }
}

/// mosquitto on a free loopback port.
struct Broker {
    let port = freePort()
    let process = Process()

    init() throws {
        process.executableURL = URL(fileURLWithPath: "/usr/sbin/mosquitto")
        process.arguments = ["-p", "\(port)"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        usleep(300_000)
    }

    func stop() { kill(process.processIdentifier, SIGKILL) }
}
