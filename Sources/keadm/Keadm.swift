// keadm: set up and tear down a cloud and its edges in the spirit of KubeEdge's keadm. It writes
// the configuration files, starts cloudcore or edgecore (the binaries beside it) in the
// background, waits until they are ready and says what it did, step by step.
import ArgumentParser
import Foundation
import KubeModel

@main
struct Keadm: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keadm",
        abstract: "Set up a swift-kubeedge cloud (init), let edges join it (gettoken, join), and tear either down (reset).",
        subcommands: [Init.self, GetToken.self, Join.self, Reset.self])
}

/// Options every command shares: where one side's configuration, data, logs and pid live.
struct Layout: ParsableArguments {
    @Option(name: .customLong("data-dir"), help: "The directory of this side's configuration, data, logs and pid file.")
    var dataDirectory: String?

    func directory(default name: String) -> String {
        URL(fileURLWithPath: dataDirectory ?? "/var/lib/\(name)").standardizedFileURL.path
    }
}

/// `keadm init`: cloudcore on its embedded defaults.
struct Init: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Start cloudcore with the embedded API server and print the kubeconfig for kubectl.")

    @OptionGroup var layout: Layout

    @Option(name: .customLong("advertise-address"), help: "The address edges reach the cloud at (written into its certificate).")
    var advertiseAddress = "127.0.0.1"

    @Option(name: .customLong("kube-config"), help: "A kubeconfig of an existing cluster instead of the embedded API server.")
    var kubeConfig = ""

    func run() async throws {
        let root = layout.directory(default: "kubeedge")
        let daemon = Daemon(name: "cloudcore", root: root)
        let config = root + "/cloudcore.yaml"
        let monitor = 9091
        try Step.run("Writing \(config)") {
            try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
            guard !FileManager.default.fileExists(atPath: config) else { return "kept the existing file" }
            try """
            commonConfig: {monitorServer: "127.0.0.1:\(monitor)"}
            kubeAPIConfig: {kubeConfig: "\(kubeConfig)"}
            embeddedAPIServer: {dataDirectory: \(root)/apiserver}
            modules:
              cloudHub:
                advertiseAddress: [\(advertiseAddress)]
                certificatesDirectory: \(root)/ca
                outbox: \(root)/cloudhub-outbox.db

            """.write(toFile: config, atomically: true, encoding: .utf8)
            return nil
        }
        try await daemon.start(arguments: ["--config", config], readiness: "http://127.0.0.1:\(monitor)/healthz")
        let kubeconfig = kubeConfig.isEmpty ? root + "/apiserver/admin.kubeconfig" : kubeConfig
        print("""

        cloudcore is running (log: \(daemon.logPath)).
        kubectl:     export KUBECONFIG=\(kubeconfig)
        join edges:  keadm join --cloudcore-ipport=\(advertiseAddress):10000 --token=$(keadm gettoken --data-dir \(root))
        """)
    }
}

/// `keadm gettoken`: a bootstrap token from the cloud's CA.
struct GetToken: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "gettoken", abstract: "Print a bootstrap token for edges to join with.")

    @OptionGroup var layout: Layout

    func run() throws {
        let root = layout.directory(default: "kubeedge")
        let result = try Daemon.runToEnd(Daemon.binary("cloudcore"), ["gettoken", "--config", root + "/cloudcore.yaml"])
        guard result.status == 0 else { throw KeadmError("cloudcore gettoken failed: \(result.output)") }
        print(result.output.trimmingCharacters(in: .whitespacesAndNewlines))
    }
}

/// `keadm join`: edgecore joined to a cloud with a token.
struct Join: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Start edgecore joined to a cloud with a bootstrap token.")

    @OptionGroup var layout: Layout

    @Option(name: .customLong("cloudcore-ipport"), help: "The cloud's WebSocket address; QUIC and HTTPS are on the next two ports.")
    var cloudcore: String

    @Option(help: "A bootstrap token (`keadm gettoken` on the cloud).")
    var token: String

    @Option(name: .customLong("edgenode-name"), help: "The node's name (default: the host name).")
    var nodeName = ProcessInfo.processInfo.hostName.lowercased()

    @Option(name: [.customShort("l"), .customLong("labels")],
            help: "Labels for the node when it registers: key1=value1,key2=value2 (kubelet's --node-labels rules).")
    var labels: String?

    @Option(name: .customLong("mqtt-server"), help: "The MQTT broker EventBus uses.")
    var mqttServer = "tcp://127.0.0.1:1883"

    @Option(name: .customLong("metrics-port"), help: "The port of edgecore's /metrics.")
    var metricsPort = 10353

    @Option(name: .customLong("metaserver-port"), help: "The port of the edge's local API (MetaServer).")
    var metaServerPort = 10550

    func validate() throws {
        guard let colon = cloudcore.lastIndex(of: ":"), Int(cloudcore[cloudcore.index(after: colon)...]) != nil else {
            throw ValidationError("--cloudcore-ipport must be IP:PORT, not \(cloudcore)")
        }
        _ = try nodeLabels()
    }

    /// `--labels` as a map; each item must be key=value.
    func nodeLabels() throws -> [(String, String)] {
        guard let labels, !labels.isEmpty else { return [] }
        return try labels.split(separator: ",").map { item in
            let parts = item.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts.count == 2, !parts[0].isEmpty else { throw ValidationError("--labels: \(item) is not key=value") }
            // kubelet's --node-labels refuses what the API server would.
            let (key, value) = (String(parts[0]), String(parts[1]))
            if let problem = KubeNameRules.qualifiedNameProblems(key).first { throw ValidationError("--labels: invalid label key \"\(key)\": \(problem)") }
            if let problem = KubeNameRules.labelValueProblems(value).first { throw ValidationError("--labels: invalid label value \"\(value)\" of \(key): \(problem)") }
            return (key, value)
        }
    }

    func run() async throws {
        let root = layout.directory(default: "kubeedge-edge")
        let daemon = Daemon(name: "edgecore", root: root)
        let colon = cloudcore.lastIndex(of: ":")!
        let host = String(cloudcore[..<colon])
        let port = Int(cloudcore[cloudcore.index(after: colon)...])!
        let config = root + "/edgecore.yaml"
        // Keys and values as double-quoted YAML strings.
        func quoted(_ text: String) -> String { "\"" + text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\"" }
        let labelsYAML = try nodeLabels().map { "\(quoted($0.0)): \(quoted($0.1))" }.joined(separator: ", ")
        try Step.run("Writing \(config) for node \(nodeName)") {
            try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
            try """
            database: {dataSource: \(root)/edgecore.db}
            modules:
              edgeHub:
                httpServer: https://\(host):\(port + 2)
                quic: {server: "\(host):\(port + 1)"}
                websocket: {server: "\(host):\(port)"}
                token: \(token)
                certificatesDirectory: \(root)/certs
                outbox: \(root)/edgehub-outbox.db
              eventBus: {mqttServerExternal: "\(mqttServer)"}
              metaManager:
                metaServer: {server: "127.0.0.1:\(metaServerPort)"}
              edged: {hostnameOverride: \(nodeName), rootDirectory: \(root)/edged, nodeLabels: {\(labelsYAML)}}
            metrics: {server: "127.0.0.1:\(metricsPort)"}

            """.write(toFile: config, atomically: true, encoding: .utf8)
            return nil
        }
        try await daemon.start(arguments: ["--config", config], readiness: "http://127.0.0.1:\(metricsPort)/healthz")
        try await Step.wait("Waiting for the node to connect to the cloud", timeout: .seconds(60)) {
            guard let metrics = await Daemon.get("http://127.0.0.1:\(metricsPort)/metrics") else { return false }
            return metrics.split(separator: "\n").contains { $0.hasPrefix("edgecore_edgehub_connected 1") }
        }
        print("\nedgecore is running as node \(nodeName) (log: \(daemon.logPath)).")
    }
}

/// `keadm reset`: stop the daemon of a side and remove its files.
struct Reset: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Stop cloudcore or edgecore started by keadm and remove its directory.")

    @OptionGroup var layout: Layout

    @Flag(help: "Reset the edge side (default: the cloud side).")
    var edge = false

    @Flag(name: .customLong("keep-data"), help: "Stop the daemon but keep its directory.")
    var keepData = false

    func run() async throws {
        let root = layout.directory(default: edge ? "kubeedge-edge" : "kubeedge")
        let daemon = Daemon(name: edge ? "edgecore" : "cloudcore", root: root)
        try await daemon.stop()
        if edge {
            // Pods of the process runtime outlive edgecore (as kubelet's containers do): end them too.
            try Step.run("Stopping the node's containers") {
                let result = try Daemon.runToEnd("/usr/bin/pkill", ["-TERM", "-f", "--", root + "/edged/containers/"])
                return result.status == 1 ? "none running" : nil
            }
        }
        if !keepData {
            try Step.run("Removing \(root)") {
                guard FileManager.default.fileExists(atPath: root) else { return "nothing there" }
                try FileManager.default.removeItem(atPath: root)
                return nil
            }
        }
    }
}

struct KeadmError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
