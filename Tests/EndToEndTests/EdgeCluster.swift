import Foundation
import Testing
import TestSupport

/// The product's executables beside the test bundle (`make test` builds every product).
let productDirectory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().path

/// A temporary directory, a mosquitto broker and a started cloudcore, and the edges joined to
/// it; ``end()`` kills them all and removes the directory.
final class EdgeCluster: @unchecked Sendable {
    let directory = makeTemporaryDirectory()
    let broker: MosquittoBroker
    let cloud: CloudCoreProcess
    private var edges: [EdgeCoreProcess] = []

    init() async throws {
        broker = try await MosquittoBroker()
        cloud = try CloudCoreProcess(directory: directory + "/cloud")
        try await cloud.start()
    }

    /// A started edgecore joined as `name`, asking for `labels` at registration.
    /// `edged` adds settings to `modules.edged` (`containerLogMaxSize: 1Ki`, say).
    /// `quic: false` keeps the edge on the WebSocket backend.
    func addEdge(_ name: String, labels: [String: String] = [:], edged: String = "", quic: Bool = true) async throws -> EdgeCoreProcess {
        let edge = try EdgeCoreProcess(name: name, directory: directory + "/" + name, cloud: cloud, broker: broker, labels: labels, edged: edged, quic: quic)
        edges.append(edge)
        try await edge.start()
        return edge
    }

    func end() {
        for edge in edges { edge.kill9() }
        cloud.kill9()
        broker.stop()
        removeTemporaryDirectory(directory)
    }
}

/// A daemon could not bind a port `freeLoopbackPort()` handed out: another test took it meanwhile.
struct PortTaken: Error, CustomStringConvertible {
    var program: String
    var output: String
    var description: String { "\(program) found a port taken: \(output)" }
}

/// One of the product's daemons run again and again from one configuration: each start's
/// output in `{directory}/{program}.{n}.log`, ready once `/healthz` on `healthPort` answers 200.
final class RestartableDaemon: @unchecked Sendable {
    let program: String
    let directory: String
    let configPath: String
    var healthPort: Int
    let healthHost: String
    /// A command the program runs under (`ip netns exec NAME`), or none.
    let launcher: [String]
    private var process: BackgroundProcess?
    private var starts = 0
    private var hasStarted = false

    init(program: String, directory: String, configPath: String, healthPort: Int, healthHost: String = "127.0.0.1", launcher: [String] = []) {
        self.program = program
        self.directory = directory
        self.configPath = configPath
        self.healthPort = healthPort
        self.healthHost = healthHost
        self.launcher = launcher
    }

    /// Everything every start printed.
    var log: String {
        (0..<starts).map { (try? String(contentsOfFile: directory + "/\(program).\($0).log", encoding: .utf8)) ?? "" }.joined()
    }

    func start() async throws {
        let output = directory + "/\(program).\(starts).log"
        starts += 1
        let command = launcher + [productDirectory + "/" + program, "--config", configPath]
        process = try BackgroundProcess(command[0], Array(command.dropFirst()), outputFile: output)
        let (host, port) = (healthHost, healthPort)
        let started = process!
        guard await eventually(timeout: .seconds(30), {
            guard started.isRunning else { return true }  // exited: reported below, at once
            return (try? await httpRequest(host: host, port: port, path: "/healthz", timeout: .seconds(2)).status) == 200
        }), started.isRunning else {
            let output = (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
            process = nil
            started.stop()
            if output.contains("Address already in use") { throw PortTaken(program: program, output: output) }
            throw TestTimeout(description: "\(program) did not become ready: \(log)")
        }
    }

    /// Starts; while it has never started, a port another test took since it was picked calls
    /// `repick` (fresh ports, configuration rewritten) and tries again, up to three times.
    /// Later starts keep their ports: edges know them.
    func start(repickingPortsWith repick: () throws -> Void) async throws {
        for attempt in 1...3 {
            do {
                try await start()
                hasStarted = true
                return
            } catch let error as PortTaken {
                guard !hasStarted, attempt < 3 else { throw error }
                try repick()
            }
        }
    }

    /// SIGTERM, waiting for a graceful exit; the exit status.
    @discardableResult
    func stop() async -> Int32? {
        guard let process else { return nil }
        self.process = nil
        let status = await process.signal(SIGTERM, waitingUpTo: .seconds(20))
        process.stop()
        return status
    }

    /// SIGKILL: no chance to finish anything.
    func kill9() {
        process?.stop()
        process = nil
    }

    /// The running process's id, if it runs.
    var processIdentifier: Int32? { process?.processIdentifier }
}

/// A real cloudcore process on loopback ports of its own, with the embedded API server, and the
/// kubectl that drives it. Its files live under ``directory``; ``stop()``, ``start()`` and ``kill9()``
/// keep them (the API server's objects, the CA, the hub's outbox).
final class CloudCoreProcess: @unchecked Sendable {
    let directory: String
    private(set) var webSocketPort = freeLoopbackPort()
    private(set) var quicPort = freeLoopbackPort()
    private(set) var httpsPort = freeLoopbackPort()
    private(set) var apiPort = freeLoopbackPort()
    private(set) var monitorPort = freeLoopbackPort()
    private let daemon: RestartableDaemon
    private let nodeNotReadyGracePeriod: Int
    private let hubAddress: String
    private let hubSettings: [String]

    var kubeconfig: String { directory + "/api/admin.kubeconfig" }
    var configPath: String { directory + "/cloudcore.yaml" }
    /// Everything every start of cloudcore printed.
    var log: String { daemon.log }

    /// `hubSettings` are extra `modules.cloudHub` lines (`key: value`), for limits.
    /// The listeners edges connect to bind `hubAddress`.
    init(directory: String, nodeNotReadyGracePeriod: Int = 2, hubAddress: String = "127.0.0.1", hubSettings: [String] = []) throws {
        self.directory = directory
        self.nodeNotReadyGracePeriod = nodeNotReadyGracePeriod
        self.hubAddress = hubAddress
        self.hubSettings = hubSettings
        daemon = RestartableDaemon(program: "cloudcore", directory: directory, configPath: directory + "/cloudcore.yaml", healthPort: monitorPort)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try writeConfig()
    }

    private func writeConfig() throws {
        try """
        commonConfig: {monitorServer: "127.0.0.1:\(monitorPort)"}
        embeddedAPIServer: {dataDirectory: \(directory)/api, port: \(apiPort)}
        modules:
          cloudHub:
            certificatesDirectory: \(directory)/ca
            outbox: \(directory)/outbox.db
            keepaliveInterval: 1
            websocket: {address: \(hubAddress), port: \(webSocketPort)}
            quic: {address: \(hubAddress), port: \(quicPort)}
            https: {address: \(hubAddress), port: \(httpsPort)}
        \(hubSettings.map { "    " + $0 + "\n" }.joined())  edgeController: {nodeNotReadyGracePeriod: \(nodeNotReadyGracePeriod)}

        """.write(toFile: configPath, atomically: true, encoding: .utf8)
    }

    /// Starts cloudcore and waits for `/healthz` (ports picked again if the first start finds one taken).
    func start() async throws {
        try await daemon.start { [self] in
            (webSocketPort, quicPort, httpsPort, apiPort, monitorPort) =
                (freeLoopbackPort(), freeLoopbackPort(), freeLoopbackPort(), freeLoopbackPort(), freeLoopbackPort())
            daemon.healthPort = monitorPort
            try writeConfig()
        }
    }

    /// SIGTERM, waiting for a graceful exit; the exit status.
    @discardableResult
    func stop() async -> Int32? { await daemon.stop() }

    /// SIGKILL: no chance to finish anything.
    func kill9() { daemon.kill9() }

    /// Resident memory now and its peak since start (`VmRSS`, `VmHWM`), in bytes.
    var memory: (resident: Int, peak: Int)? {
        guard let pid = daemon.processIdentifier,
              let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        func field(_ name: String) -> Int {
            guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix(name + ":") }) else { return 0 }
            return (Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") ?? 0) * 1024
        }
        return (field("VmRSS"), field("VmHWM"))
    }

    /// Runs `cloudcore apiserver` alone on the same data and port (cloudcore itself stopped),
    /// for `body` to change objects while no cloudcore is up.
    func withAPIServerAlone(_ body: () async throws -> Void) async throws {
        let alone = try BackgroundProcess(productDirectory + "/cloudcore", ["apiserver", "--data-dir", directory + "/api", "--port", "\(apiPort)"],
                                          outputFile: directory + "/apiserver-alone.log")
        defer { alone.stop() }
        let port = apiPort
        guard await eventually(timeout: .seconds(30), { acceptsConnections(port: port) }) else { throw TestTimeout(description: "the API server alone did not listen") }
        try await body()
        _ = await alone.signal(SIGTERM, waitingUpTo: .seconds(10))
    }

    /// A counter of cloudcore's `/metrics` (`0` when it has not counted yet).
    func metric(_ name: String) async -> Int? {
        guard let response = try? await httpRequest(port: monitorPort, path: "/metrics"), let text = try? await response.text() else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix(name + " ") {
            return Double(line.split(separator: " ")[1]).map { Int($0) }
        }
        return 0
    }

    /// A bootstrap token for an edge (`cloudcore gettoken --config`).
    func token() throws -> String {
        let result = try runProcess(productDirectory + "/cloudcore", ["gettoken", "--config", configPath])
        guard result.status == 0 else { throw TestTimeout(description: "cloudcore gettoken failed: \(result.output)") }
        return result.output.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// kubectl against the embedded API server; its output (stdout and stderr).
    @discardableResult
    func kubectl(_ arguments: String...) async throws -> String {
        let result = try await runProcessOffPool("/usr/bin/kubectl", ["--kubeconfig", kubeconfig] + arguments)
        guard result.status == 0 else { throw KubectlFailed(arguments: arguments, output: result.output) }
        return result.output
    }

    /// `kubectl apply -f` of `yaml`.
    func apply(_ yaml: String) async throws {
        let file = directory + "/apply-\(UUID().uuidString.prefix(8)).yaml"
        try yaml.write(toFile: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: file) }
        try await kubectl("apply", "-f", file)
    }

    /// `kubectl get … -o jsonpath=…`, or `nil` when kubectl fails (the object is absent).
    func jsonPath(_ path: String, of object: String...) async -> String? {
        try? await runProcessOffPool("/usr/bin/kubectl", ["--kubeconfig", kubeconfig, "get"] + object + ["-o", "jsonpath=\(path)"])
            .output.trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

struct KubectlFailed: Error, CustomStringConvertible {
    var arguments: [String]
    var output: String
    var description: String { "kubectl \(arguments.joined(separator: " ")) failed: \(output)" }
}

/// A real edgecore process joined to a ``CloudCoreProcess`` with a bootstrap token, running pods
/// with the process runtime; its files (database, certificates, outbox, pods) under
/// ``directory`` survive restarts.
final class EdgeCoreProcess: @unchecked Sendable {
    let name: String
    let directory: String
    private(set) var metaServerPort = freeLoopbackPort()
    private(set) var metricsPort = freeLoopbackPort()
    /// Where the test reaches the edge's MetaServer and metrics.
    let localAddress: String
    private let daemon: RestartableDaemon
    /// The configuration for given MetaServer and metrics ports.
    private let configuration: @Sendable (_ metaServerPort: Int, _ metricsPort: Int) -> String

    var log: String { daemon.log }

    /// With `namespace`, edgecore runs in that network namespace (`ip netns exec`), reaches the
    /// cloud at `cloudHost` and serves MetaServer and metrics on `localAddress`, its address
    /// there (MetaServer on every address, loopback included).
    init(name: String, directory: String, cloud: CloudCoreProcess, broker: MosquittoBroker, cloudHost: String = "127.0.0.1",
         namespace: String? = nil, localAddress: String = "127.0.0.1", labels: [String: String] = [:], edged: String = "", quic: Bool = true) throws {
        self.name = name
        self.directory = directory
        self.localAddress = localAddress
        daemon = RestartableDaemon(program: "edgecore", directory: directory, configPath: directory + "/edgecore.yaml", healthPort: metricsPort,
                                   healthHost: localAddress, launcher: namespace.map { ["/usr/sbin/ip", "netns", "exec", $0] } ?? [])
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let token = try cloud.token()
        let (httpsPort, quicPort, webSocketPort) = (cloud.httpsPort, cloud.quicPort, cloud.webSocketPort)
        let nodeLabels = labels.sorted { $0.key < $1.key }.map { "\"\($0.key)\": \"\($0.value)\"" }.joined(separator: ", ")
        configuration = { metaServerPort, metricsPort in """
        database: {dataSource: \(directory)/edgecore.db}
        modules:
          edgeHub:
            heartbeat: 1
            httpServer: https://\(cloudHost):\(httpsPort)
            quic: {server: "\(cloudHost):\(quicPort)", enable: \(quic)}
            websocket: {server: "\(cloudHost):\(webSocketPort)"}
            token: \(token)
            certificatesDirectory: \(directory)/certs
            outbox: \(directory)/outbox.db
          eventBus: {\(namespace == nil ? "mqttServerExternal: \"tcp://127.0.0.1:\(broker.port)\"" : "enable: false")}
          metaManager:
            metaServer: {server: "\(namespace == nil ? "127.0.0.1" : "0.0.0.0"):\(metaServerPort)"}
          edged: {hostnameOverride: \(name), rootDirectory: \(directory)/edged, cgroupRoot: "", nodeStatusUpdateFrequency: 1, nodeLabels: {\(nodeLabels)}\(edged.isEmpty ? "" : ", " + edged)}
        metrics: {server: "\(localAddress):\(metricsPort)"}

        """ }
        try configuration(metaServerPort, metricsPort).write(toFile: directory + "/edgecore.yaml", atomically: true, encoding: .utf8)
    }

    /// Starts edgecore and waits for its `/healthz` (ports picked again if the first start finds one taken).
    func start() async throws {
        try await daemon.start { [self] in
            (metaServerPort, metricsPort) = (freeLoopbackPort(), freeLoopbackPort())
            daemon.healthPort = metricsPort
            try configuration(metaServerPort, metricsPort).write(toFile: directory + "/edgecore.yaml", atomically: true, encoding: .utf8)
        }
    }

    /// SIGTERM, waiting for a graceful exit; the exit status.
    @discardableResult
    func stop() async -> Int32? { await daemon.stop() }

    /// SIGKILL to edgecore alone, as when the daemon crashes: its containers keep running.
    func kill9DaemonOnly() { daemon.kill9() }

    /// SIGKILL to edgecore and to the containers it left running (their shims outlive it).
    func kill9() {
        daemon.kill9()
        // Each shim leads a process group with its container in it: end the whole group.
        let shims = (try? runProcess("/usr/bin/pgrep", ["-f", "--", directory + "/edged/"]))?.output.split(separator: "\n") ?? []
        for shim in shims where Int32(shim) != nil { _ = try? runProcess("/usr/bin/pkill", ["-9", "-g", String(shim)]) }
    }

    /// What the edge's MetaServer (its local Kubernetes-shaped API) answers for `path`: the
    /// status code and body.
    func local(_ path: String) async -> (status: Int, body: String)? {
        guard let response = try? await httpRequest(host: localAddress, port: metaServerPort, path: path), let body = try? await response.text() else { return nil }
        return (response.status, body)
    }

    /// The object at `path` on the edge, parsed; `nil` when the edge does not hold it.
    func localObject(_ path: String) async -> [String: Any]? {
        guard let (status, body) = await local(path), status == 200 else { return nil }
        return (try? JSONSerialization.jsonObject(with: Data(body.utf8))) as? [String: Any]
    }

    /// The names in the list at `path` on the edge.
    func localNames(_ path: String) async -> Set<String>? {
        guard let list = await localObject(path), let items = list["items"] as? [[String: Any]] else { return nil }
        return Set(items.compactMap { ($0["metadata"] as? [String: Any])?["name"] as? String })
    }
}

/// `data.KEY` of a ConfigMap the edge holds.
func configMapValue(_ object: [String: Any]?, _ key: String) -> String? {
    (object?["data"] as? [String: Any])?[key] as? String
}
