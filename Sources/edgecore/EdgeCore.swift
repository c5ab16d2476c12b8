// edgecore: the edge daemon. Loads edgecore.yaml, puts the enabled modules on one in-process
// bus, runs them under swift-service-lifecycle (SIGTERM/SIGINT stop them in reverse order) and
// serves their counters on /metrics.
import ArgumentParser
import DaemonSupport
import EdgeHub
import Foundation
import Logging
import Metrics
import NIOPosix
import Node
import Prometheus
import ServiceLifecycle
import Transport

@main
struct EdgeCore: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "edgecore",
        abstract: "The edge side of swift-kubeedge: EdgeHub, MetaManager and MetaServer, EventBus, DeviceTwin and ServiceBus.",
        discussion: "Reads a KubeEdge-shaped edgecore.yaml; a file need only say what differs from `edgecore --defaultconfig`.")

    @Option(name: .long, help: "The configuration file.")
    var config = "/etc/kubeedge/config/edgecore.yaml"

    @Flag(name: .customLong("defaultconfig"), help: "Print the full default configuration and exit.")
    var printDefaultConfig = false

    func run() async throws {
        if printDefaultConfig {
            print(try EdgeCoreConfig.defaultYAML(), terminator: "")
            return
        }
        let settings: EdgeCoreConfig
        do {
            settings = try EdgeCoreConfig.load(path: config, program: "edgecore")
        } catch {
            throw ValidationError("\(config): \(error)")
        }
        let registry = DaemonStartup.bootstrap(logLevel: settings.logLevel)
        let logger = Logger(label: "edgecore")
        let node = try EdgeNode(settings: settings, logger: logger)
        var services = node.services
        if settings.metrics.enable {
            let (host, port) = try EdgeCoreConfig.hostPort(settings.metrics.server, key: "metrics.server")
            services.insert(MetricsEndpoint(host: host, port: port, registry: registry, collector: node.collector, logger: logger), at: 0)
        }
        logger.info("edgecore starting", metadata: ["node": "\(settings.nodeName)", "modules": "\(node.enabled.joined(separator: ","))"])
        try await DaemonStartup.run(services, logger: logger)
        logger.info("edgecore stopped")
    }
}
