// The pieces cloud-bench drives: a real cloudcore process (embedded API server, loopback ports
// of its own), kubectl against it, and simulated edge nodes (EdgeHub instances in this process
// whose MetaManager is a bus endpoint that records what arrives).
import BenchSupport
import EdgeHub
import Foundation
import NIOCore
import Synchronization
import Transport

/// cloudcore, started from the binary beside this one, with everything under `directory`.
final class CloudCoreRig: @unchecked Sendable {
    let directory: String
    let webSocketPort = freePort()
    let quicPort = freePort()
    let httpsPort = freePort()
    let apiPort = freePort()
    let monitorPort = freePort()
    private var process: Process?

    var configPath: String { directory + "/cloudcore.yaml" }
    var kubeconfig: String { directory + "/api/admin.kubeconfig" }
    var pid: Int32? { process?.processIdentifier }

    init(directory: String) throws {
        self.directory = directory
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try """
        logLevel: error
        commonConfig: {monitorServer: "127.0.0.1:\(monitorPort)"}
        embeddedAPIServer: {dataDirectory: \(directory)/api, port: \(apiPort)}
        modules:
          cloudHub:
            certificatesDirectory: \(directory)/ca
            outbox: \(directory)/outbox.db
            websocket: {address: 127.0.0.1, port: \(webSocketPort)}
            quic: {address: 127.0.0.1, port: \(quicPort)}
            https: {address: 127.0.0.1, port: \(httpsPort)}

        """.write(toFile: configPath, atomically: true, encoding: .utf8)
    }

    static func binary(_ name: String) -> String {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent(name).path
    }

    /// Starts cloudcore and waits until `/healthz` answers 200.
    func start() async throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.binary("cloudcore"))
        process.arguments = ["--config", configPath]
        process.standardOutput = FileHandle.nullDevice
        _ = FileManager.default.createFile(atPath: directory + "/cloudcore.log", contents: nil)
        process.standardError = FileHandle(forWritingAtPath: directory + "/cloudcore.log")
        try process.run()
        self.process = process
        let deadline = ContinuousClock.now + .seconds(60)
        while shell("curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:\(monitorPort)/healthz").1 != "200" {
            guard ContinuousClock.now < deadline, process.isRunning else { throw BenchError("cloudcore did not become ready (see \(directory)/cloudcore.log)") }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// SIGTERM, then waits for it to exit.
    func stop() {
        guard let process else { return }
        self.process = nil
        process.terminate()
        process.waitUntilExit()
    }

    /// A bootstrap token for edges.
    func token() throws -> String {
        let (status, output) = shell("\(Self.binary("cloudcore")) gettoken --config \(configPath)")
        guard status == 0 else { throw BenchError("gettoken failed: \(output)") }
        return output.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Runs kubectl against the embedded API server; its output.
    @discardableResult
    func kubectl(_ arguments: String) throws -> String {
        let (status, output) = shell("kubectl --kubeconfig \(kubeconfig) \(arguments) 2>&1")
        guard status == 0 else { throw BenchError("kubectl \(arguments.prefix(200)) failed: \(output.prefix(500))") }
        return output
    }

    /// `cloudcore apiserver` alone on the same data while `body` runs (cloudcore itself down).
    func withAPIServerAlone(_ body: () throws -> Void) async throws {
        let alone = Process()
        alone.executableURL = URL(fileURLWithPath: Self.binary("cloudcore"))
        alone.arguments = ["apiserver", "--data-dir", directory + "/api", "--port", "\(apiPort)"]
        alone.standardOutput = FileHandle.nullDevice
        alone.standardError = FileHandle.nullDevice
        try alone.run()
        defer {
            alone.terminate()
            alone.waitUntilExit()
        }
        let deadline = ContinuousClock.now + .seconds(30)
        while (try? kubectl("get --raw /version")) == nil {
            guard ContinuousClock.now < deadline else { throw BenchError("cloudcore apiserver did not answer") }
            try await Task.sleep(for: .milliseconds(50))
        }
        try body()
    }
}

/// Edge nodes simulated in this process: an EdgeHub each (QUIC, WebSocket fallback), joined with
/// a token, whose MetaManager is a bus endpoint recording the latest content per resource.
final class SimulatedEdges: Sendable {
    let names: [String]
    private let hubs: [EdgeHub]
    private let readers: [Task<Void, Never>]
    /// Each hub's `run()`, started by ``connect(concurrency:timeout:)`` and cancelled by ``stop()``.
    private let running = Mutex<[Task<Void, Never>]>([])
    private let received = Received()

    /// Per node: messages received, and the latest content by resource.
    private final class Received: Sendable {
        let nodes = Mutex<[String: (count: Int, latest: [String: String])]>([:])
    }

    init(count: Int, prefix: String, rig: CloudCoreRig, token: String, preferQUIC: Bool = true, record: Bool = true) throws {
        names = (0..<count).map { "\(prefix)-\($0)" }
        let received = received
        var hubs: [EdgeHub] = []
        var readers: [Task<Void, Never>] = []
        for name in names {
            let bus = MessageBus()
            let meta = bus.register(module: "metaManager", group: "meta")
            hubs.append(try EdgeHub(configuration: EdgeHubConfiguration(
                nodeName: name, cloudHost: "127.0.0.1", certificatesDirectory: rig.directory + "/edges/\(name)", token: token,
                quicPort: rig.quicPort, webSocketPort: rig.webSocketPort, httpsPort: rig.httpsPort, preferQUIC: preferQUIC,
                initialBackoff: .milliseconds(100), maxBackoff: .seconds(1)), bus: bus))
            guard record else { continue }
            readers.append(Task {
                for await message in meta.messages(on: .state) {
                    received.nodes.withLock { received in
                        received[name, default: (0, [:])].count += 1
                        received[name, default: (0, [:])].latest[message.router.resource] =
                            message.router.operation == "delete" ? nil : String(buffer: message.content)
                    }
                }
            })
        }
        self.hubs = hubs
        self.readers = readers
    }

    /// Starts every hub, at most `concurrency` joining at once; returns once all are connected.
    func connect(concurrency: Int = 50, timeout: Duration = .seconds(300)) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            var pending = hubs.makeIterator()
            for _ in 0..<concurrency {
                guard let hub = pending.next() else { break }
                group.addTask { [self] in try await join(hub, timeout: timeout) }
            }
            while try await group.next() != nil {
                guard let hub = pending.next() else { continue }
                group.addTask { [self] in try await join(hub, timeout: timeout) }
            }
        }
    }

    private func join(_ hub: EdgeHub, timeout: Duration) async throws {
        running.withLock { $0.append(Task { await hub.run() }) }
        try await hub.channel.waitUntilConnected(timeout: timeout)
    }

    /// How many hubs are connected now.
    var connected: Int { hubs.filter(\.channel.isConnected).count }

    /// Messages received so far, per node.
    func counts() -> [String: Int] { received.nodes.withLock { $0.mapValues(\.count) } }

    /// The latest content of every resource a node holds.
    func holdings(of node: String) -> [String: String] { received.nodes.withLock { $0[node]?.latest ?? [:] } }

    func stop() async {
        for reader in readers { reader.cancel() }
        let hubs = running.withLock { running in defer { running = [] }; return running }
        for hub in hubs { hub.cancel() }
        for hub in hubs { await hub.value }
    }
}

/// A real edgecore joined to `cloud` with a token (Edged and EventBus off: only the metadata
/// path is measured), with its MetaServer on a port of its own.
final class EdgeCoreRig: @unchecked Sendable {
    let directory: String
    let metaServerPort = freePort()
    private let process = Process()

    init(name: String, directory: String, cloud: CloudCoreRig) throws {
        self.directory = directory
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try """
        database: {dataSource: \(directory)/edgecore.db}
        modules:
          edgeHub:
            httpServer: https://127.0.0.1:\(cloud.httpsPort)
            quic: {server: "127.0.0.1:\(cloud.quicPort)"}
            websocket: {server: "127.0.0.1:\(cloud.webSocketPort)"}
            token: \(try cloud.token())
            certificatesDirectory: \(directory)/certs
            outbox: \(directory)/outbox.db
          eventBus: {enable: false}
          metaManager: {metaServer: {server: "127.0.0.1:\(metaServerPort)"}}
          edged: {enable: false, hostnameOverride: \(name)}
        metrics: {server: "127.0.0.1:\(freePort())"}

        """.write(toFile: directory + "/edgecore.yaml", atomically: true, encoding: .utf8)
        process.executableURL = URL(fileURLWithPath: CloudCoreRig.binary("edgecore"))
        process.arguments = ["--config", directory + "/edgecore.yaml"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
    }

    /// Starts edgecore and waits until its MetaServer answers.
    func start() async throws {
        try process.run()
        let deadline = ContinuousClock.now + .seconds(60)
        while shell("curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:\(metaServerPort)/api/v1/namespaces/default/configmaps").1 != "200" {
            guard ContinuousClock.now < deadline, process.isRunning else { throw BenchError("edgecore did not start") }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    /// How many ConfigMaps the edge's MetaServer lists in `default`.
    func configMapCount() -> Int {
        let (_, body) = shell("curl -s http://127.0.0.1:\(metaServerPort)/api/v1/namespaces/default/configmaps")
        guard let list = try? JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any], let items = list["items"] as? [Any] else { return 0 }
        return items.count
    }

    func stop() {
        process.terminate()
        process.waitUntilExit()
    }
}
