// cloudcore: the cloud daemon. Loads cloudcore.yaml, runs the embedded API server (or uses a
// cluster's), CloudHub and the controllers under swift-service-lifecycle (SIGTERM/SIGINT stop
// them in reverse order) and serves their counters on /metrics; and its admin commands.
import ArgumentParser
import Cloud
import DaemonSupport
import Foundation
import Logging
import Metrics
import Prometheus
import ServiceLifecycle
import Transport

@main
struct CloudCore: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cloudcore",
        abstract: "The cloud side of swift-kubeedge.",
        subcommands: [Daemon.self, GetToken.self, APIServerCommand.self, AddUser.self],
        defaultSubcommand: Daemon.self)
}

/// The daemon (`cloudcore --config FILE`).
struct Daemon: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run cloudcore: the API server (embedded unless kubeAPIConfig names a cluster), CloudHub and the controllers.",
        discussion: "Reads a KubeEdge-shaped cloudcore.yaml; a file need only say what differs from `cloudcore --defaultconfig`.")

    @Option(name: .long, help: "The configuration file.")
    var config = "/etc/kubeedge/config/cloudcore.yaml"

    @Flag(name: .customLong("defaultconfig"), help: "Print the full default configuration and exit.")
    var printDefaultConfig = false

    func run() async throws {
        if printDefaultConfig {
            print(try CloudCoreConfig.defaultYAML(), terminator: "")
            return
        }
        let settings: CloudCoreConfig
        do {
            settings = try CloudCoreConfig.load(path: config, program: "cloudcore")
        } catch {
            throw ValidationError("\(config): \(error)")
        }
        let registry = DaemonStartup.bootstrap(logLevel: settings.logLevel)
        let logger = Logger(label: "cloudcore")
        let server = try CloudCoreServer(settings: settings, logger: logger)
        var services: [any Service] = [server]
        if !settings.commonConfig.monitorServer.isEmpty {
            let (host, port) = try CloudCoreConfig.hostPort(settings.commonConfig.monitorServer, key: "commonConfig.monitorServer")
            let collector = MetricsCollector(daemon: "cloudcore", sources: server.metricsSources)
            services.insert(MetricsEndpoint(host: host, port: port, registry: registry, collector: collector, logger: logger, isReady: { server.isReady }), at: 0)
        }
        try await DaemonStartup.run(services, logger: logger)
        logger.info("cloudcore stopped")
    }
}
