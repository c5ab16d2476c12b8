import DaemonSupport
import EdgeHub
import Foundation
import Logging
import NIOPosix
import Node
import ServiceLifecycle
import Storage
import Transport

/// The enabled modules of one node on one bus, as services in start order (the group stops
/// them in reverse: EdgeHub first, so nothing new arrives while the rest finish).
struct EdgeNode {
    let services: [any Service]
    let enabled: [String]
    let collector: MetricsCollector

    init(settings: EdgeCoreConfig, logger: Logger) throws {
        let bus = MessageBus()
        let modules = settings.modules
        let nodeName = settings.nodeName
        var services: [any Service] = []
        var enabled: [String] = []
        var sources: [MetricsCollector.Source] = []

        // One database object for the node's file, shared by MetaManager's and DeviceTwin's stores.
        let database = modules.metaManager.enable || modules.deviceTwin.enable ? try Database(path: settings.database.dataSource) : nil
        var metaStore: MetaStore?
        var edgedModule: Edged?
        if modules.metaManager.enable, let database {
            let store = try MetaStore(configuration: .init(path: settings.database.dataSource), database: database)
            metaStore = store
            let metaManager = MetaManager(
                configuration: MetaManagerConfiguration(remoteQueryTimeout: .seconds(modules.metaManager.remoteQueryTimeout)), store: store, bus: bus,
                logger: Logger(label: "metamanager"))
            services.append(metaManager)
            enabled.append("metaManager")
            sources.append(.init(module: "metamanager", counters: { metaManager.statistics }, gauges: { ["revision": Double(store.revision)] }))
            if modules.metaManager.metaServer.enable {
                let (host, port) = try EdgeCoreConfig.hostPort(modules.metaManager.metaServer.server, key: "modules.metaManager.metaServer.server")
                let metaServer = MetaServer(configuration: .init(host: host, port: port), store: store, logger: Logger(label: "metaserver"))
                services.append(metaServer)
                enabled.append("metaServer")
                sources.append(.init(module: "metaserver", counters: { nil }, gauges: { ["open_connections": Double(metaServer.openConnections)] }))
            }
        }
        if modules.edged.enable, let store = metaStore {
            let root = modules.edged.rootDirectory
            let runtime: any ContainerRuntime
            if modules.edged.containerRuntime == "remote" {
                runtime = try CRIRuntime(endpoint: modules.edged.remoteRuntimeEndpoint, logRoot: root + "/logs",
                                         callTimeout: .seconds(modules.edged.runtimeRequestTimeout),
                                         maxMessageBytes: try settings.runtimeMaxMessageBytes(), logger: Logger(label: "edged.cri"))
            } else {
                runtime = try ProcessRuntime(root: root + "/containers", cgroupRoot: modules.edged.cgroupRoot.isEmpty ? nil : modules.edged.cgroupRoot)
            }
            var edgedConfiguration = Edged.Configuration(
                nodeName: nodeName, rootDirectory: root, syncInterval: .seconds(modules.edged.syncFrequency),
                maxLogBytes: try settings.containerLogMaxBytes(), maxLogFiles: modules.edged.containerLogMaxFiles,
                nodeIP: modules.edged.nodeIP.isEmpty ? nil : modules.edged.nodeIP,
                nodeStatusUpdateFrequency: .seconds(modules.edged.nodeStatusUpdateFrequency),
                nodeLabels: modules.edged.nodeLabels)
            edgedConfiguration.logMonitorInterval = .seconds(modules.edged.containerLogMonitorInterval)
            let edged = try Edged(configuration: edgedConfiguration, store: store, bus: bus, runtime: runtime, logger: Logger(label: "edged"))
            edgedModule = edged
            services.append(edged)
            enabled.append("edged")
            sources.append(.init(module: "edged", counters: { edged.statistics }, gauges: { ["pods": Double(edged.statistics.pods)] }))
        }
        if modules.deviceTwin.enable, let database {
            let store = try DeviceStore(database: database)
            let twin = DeviceTwin(
                configuration: .init(nodeName: nodeName, coalesceReports: modules.deviceTwin.coalesceReports, maxPayloadBytes: modules.deviceTwin.maxPayloadBytes),
                store: store, bus: bus, logger: Logger(label: "devicetwin"))
            services.append(twin)
            enabled.append("deviceTwin")
            sources.append(.init(module: "devicetwin", counters: { twin.statistics }, gauges: { ["devices": Double(store.count)] }))
        }
        if modules.serviceBus.enable {
            let serviceBus = ServiceBus(
                configuration: .init(
                    timeout: .seconds(modules.serviceBus.timeout), maxRequestBytes: modules.serviceBus.maxRequestBytes,
                    maxResponseBytes: modules.serviceBus.maxResponseBytes, allowedHosts: Set(modules.serviceBus.allowedHosts)),
                bus: bus, logger: Logger(label: "servicebus"))
            services.append(serviceBus)
            enabled.append("serviceBus")
            sources.append(.init(module: "servicebus", counters: { serviceBus.statistics }, gauges: { [:] }))
        }
        if modules.eventBus.enable {
            let (host, port) = try EdgeCoreConfig.hostPort(modules.eventBus.mqttServerExternal, scheme: "tcp", key: "modules.eventBus.mqttServerExternal")
            var configuration = EventBus.Configuration(nodeName: nodeName, host: host, port: port, qos: modules.eventBus.mqttQOS)
            // A broker that is down at start is waited for, not fatal.
            configuration.connectTimeout = nil
            if !modules.eventBus.mqttUsername.isEmpty {
                configuration.username = modules.eventBus.mqttUsername
                configuration.password = modules.eventBus.mqttPassword
            }
            if modules.eventBus.tls.enable {
                configuration.tlsCAFile = modules.eventBus.tls.tlsMqttCAFile
                configuration.tlsCertificateFile = modules.eventBus.tls.tlsMqttCertFile.isEmpty ? nil : modules.eventBus.tls.tlsMqttCertFile
                configuration.tlsKeyFile = modules.eventBus.tls.tlsMqttPrivateKeyFile.isEmpty ? nil : modules.eventBus.tls.tlsMqttPrivateKeyFile
            }
            let eventBus = try EventBus(configuration: configuration, bus: bus, logger: Logger(label: "eventbus"))
            services.append(eventBus)
            enabled.append("eventBus")
            sources.append(.init(module: "eventbus", counters: { eventBus.statistics }, gauges: { ["connected": eventBus.isConnected ? 1 : 0] }))
        }
        if modules.edgeHub.enable {
            let hub = try EdgeHub(configuration: try Self.edgeHubConfiguration(settings), bus: bus, logger: Logger(label: "edgehub"))
            services.append(hub)
            enabled.append("edgeHub")
            sources.append(.init(module: "edgehub", counters: { hub.statistics }, gauges: {
                var gauges: [String: Double] = ["connected": hub.backend == nil ? 0 : 1]
                for lane in Lane.standard where lane != .control {
                    gauges["unacknowledged_\(lane)"] = Double(hub.channel.statistics(for: lane).unacknowledged)
                }
                return gauges
            }))
            if let edged = edgedModule {
                // Logs, exec, attach, port forwards and statistics the cloud asks for, on the
                // hub's channel (stopped before the hub, which is stopped first of all).
                let streams = EdgedStreamServer(edged: edged, channel: hub.channel, logger: Logger(label: "edged.streams"))
                services.append(streams)
                sources.append(.init(module: "edgedstreams", counters: { streams.statistics }, gauges: {
                    ["open_streams": Double(hub.channel.streamStatistics.open)]
                }))
            }
        }
        self.services = services
        self.enabled = enabled
        collector = MetricsCollector(daemon: "edgecore", sources: sources)
    }

    static func edgeHubConfiguration(_ settings: EdgeCoreConfig) throws -> EdgeHubConfiguration {
        let hub = settings.modules.edgeHub
        let webSocket = try EdgeCoreConfig.hostPort(hub.websocket.server, key: "modules.edgeHub.websocket.server")
        let quic = try EdgeCoreConfig.hostPort(hub.quic.server, key: "modules.edgeHub.quic.server")
        let https = try EdgeCoreConfig.hostPort(hub.httpServer, scheme: "https", key: "modules.edgeHub.httpServer")
        guard webSocket.host == https.host, !hub.quic.enable || quic.host == webSocket.host else {
            throw EdgeCoreConfigError("modules.edgeHub: websocket, quic and httpServer must name the same cloud host")
        }
        guard hub.websocket.enable else {
            throw EdgeCoreConfigError("modules.edgeHub.websocket.enable: the WebSocket fallback cannot be turned off")
        }
        var configuration = EdgeHubConfiguration(
            nodeName: settings.nodeName, cloudHost: webSocket.host, certificatesDirectory: hub.certificatesDirectory,
            token: hub.token.isEmpty ? nil : hub.token, outboxPath: hub.outbox, serverName: hub.serverName.isEmpty ? nil : hub.serverName,
            quicPort: quic.port, webSocketPort: webSocket.port, httpsPort: https.port, preferQUIC: hub.quic.enable,
            quicHandshakeTimeout: .seconds(hub.quic.handshakeTimeout), helloTimeout: .seconds(hub.websocket.handshakeTimeout))
        configuration.channel.keepaliveInterval = .seconds(hub.heartbeat)
        configuration.channel.deadPeerTimeout = .seconds(hub.heartbeat * 3)
        return configuration
    }
}
