import Cloud
import CloudHub
import DaemonSupport
import Foundation
import Logging
import ServiceLifecycle
import Synchronization
import Transport

/// Everything cloudcore runs, as one lifecycle service whose `run()` starts the parts in
/// dependency order and stops them in reverse: the embedded API server (unless a kubeconfig
/// names a cluster), the Kubernetes client, CloudHub, the controllers, and the router that hands
/// each message from an edge to its controller. Each long-running part is a child task of
/// `run()`.
final class CloudCoreServer: Service, Sendable {
    /// What the router counted.
    struct RouterCounters: Sendable, Equatable {
        /// Messages from edges no controller takes (logged at debug level).
        var unroutedMessages = 0
    }

    /// What is up once everything has started.
    struct Running: Sendable {
        var kubeconfig: String
        var ports: CloudHub.Ports
        var hub: CloudHub
        var edgeController: EdgeController?
        var deviceController: DeviceController?
        var syncController: SyncController?
    }

    let settings: CloudCoreConfig
    private let logger: Logger
    private let apiServer: EmbeddedAPIServer?
    private let running = Mutex<Running?>(nil)
    private let counters = Mutex(RouterCounters())

    init(settings: CloudCoreConfig, logger: Logger) throws {
        self.settings = settings
        self.logger = logger
        if settings.kubeAPIConfig.kubeConfig.isEmpty {
            let embedded = settings.embeddedAPIServer
            apiServer = try EmbeddedAPIServer(dataDirectory: embedded.dataDirectory, bindAddress: embedded.bindAddress, port: embedded.port,
                                              logger: Logger(label: "apiserver"))
        } else {
            apiServer = nil
        }
    }

    /// Whether everything has started (`/healthz` answers 200 from then on).
    var isReady: Bool { running.withLock { $0 != nil } }

    /// The hub, once started.
    var hub: CloudHub? { running.withLock { $0?.hub } }

    /// The counters and levels `/metrics` shows, per module.
    var metricsSources: [MetricsCollector.Source] {
        [
            .init(module: "cloudhub", counters: { [self] in hub?.statistics }, gauges: { [self] in ["online_nodes": Double(hub?.onlineNodes.count ?? 0)] }),
            .init(module: "edgecontroller", counters: { [self] in running.withLock { $0?.edgeController?.counters } }, gauges: { [:] }),
            .init(module: "devicecontroller", counters: { [self] in running.withLock { $0?.deviceController?.statistics } }, gauges: { [:] }),
            .init(module: "synccontroller", counters: { [self] in running.withLock { $0?.syncController?.statistics } }, gauges: { [:] }),
            .init(module: "router", counters: { [self] in counters.withLock { $0 } }, gauges: { [:] }),
            .init(module: "apiserver_streams", counters: { [self] in apiServer?.server.podStreamStatistics }, gauges: { [:] }),
        ]
    }

    /// Starts everything and runs until graceful shutdown (or cancellation); then stops the
    /// router and controllers, the hub (every node hears a GOAWAY) and the API server, in that
    /// order, and returns once every child task has ended.
    func run() async throws {
        let shutdown = ShutdownSignal()
        try await withGracefulShutdownHandler {
            try await withThrowingTaskGroup(of: Void.self) { apiTasks in
                let kubeconfig: String
                var embeddedKubeconfigs: (scheduler: String, controllerManager: String)?
                if let apiServer {
                    let kubeconfigs = try await apiServer.bind()
                    kubeconfig = kubeconfigs.controllers
                    embeddedKubeconfigs = (kubeconfigs.scheduler, kubeconfigs.controllerManager)
                    apiTasks.addTask { try await apiServer.run() }
                    logger.info("embedded API server listening", metadata: ["kubeconfig": "\(kubeconfigs.admin)"])
                } else {
                    kubeconfig = settings.kubeAPIConfig.kubeConfig
                }
                do {
                    try await runHubAndControllers(kubeconfig: kubeconfig, embedded: embeddedKubeconfigs, shutdown: shutdown)
                } catch {
                    apiServer?.server.close()
                    try? await apiTasks.waitForAll()
                    throw error
                }
                apiServer?.server.close()
                try await apiTasks.waitForAll()
            }
        } onGracefulShutdown: {
            shutdown.trigger()
        }
    }

    /// The Kubernetes client, CloudHub, the controllers and the router, until `shutdown`; with
    /// the embedded API server, its scheduler and workload controllers too (each with its own
    /// kubeconfig in `embedded`).
    private func runHubAndControllers(kubeconfig: String, embedded: (scheduler: String, controllerManager: String)?, shutdown: ShutdownSignal) async throws {
        let client: KubeClient
        do {
            let context = settings.kubeAPIConfig.context
            client = try KubeClient(configuration: try Kubeconfig.load(path: kubeconfig, context: context.isEmpty ? nil : context))
        } catch {
            throw CloudCoreConfigError("kubeAPIConfig.kubeConfig \(kubeconfig): \(error)")
        }
        let hub = try CloudHub(configuration: try hubConfiguration(), logger: Logger(label: "cloudhub"))
        let ports = try await hub.start()
        apiServer?.server.setNodeStreams(HubNodeStreams(hub: hub))
        let syncController = settings.modules.syncController.enable
            ? SyncController(client: client, concurrency: settings.modules.syncController.concurrentWrites, logger: Logger(label: "synccontroller")) : nil
        var edgeController: EdgeController?
        if settings.modules.edgeController.enable {
            let configuration = EdgeController.Configuration(
                nodeNotReadyGracePeriod: .seconds(settings.modules.edgeController.nodeNotReadyGracePeriod),
                batchInterval: .milliseconds(settings.modules.edgeController.batchInterval))
            edgeController = EdgeController(client: client, hub: hub, sync: syncController, configuration: configuration, logger: Logger(label: "edgecontroller"))
        }
        var deviceController: DeviceController?
        if settings.modules.deviceController.enable {
            let configuration = DeviceController.Configuration(batchInterval: .milliseconds(settings.modules.deviceController.batchInterval))
            deviceController = DeviceController(client: client, hub: hub, sync: syncController, configuration: configuration, logger: Logger(label: "devicecontroller"))
        }
        let controllers = (edge: edgeController, device: deviceController)
        let scheduler = try embedded.map { paths in
            PodScheduler(client: try KubeClient(configuration: try Kubeconfig.load(path: paths.scheduler)), logger: Logger(label: "scheduler"))
        }
        // The controller manager's controllers share one client, as kube-controller-manager's do.
        let controllerManager = try embedded.map { try KubeClient(configuration: try Kubeconfig.load(path: $0.controllerManager)) }
        let replicaSets = controllerManager.map { ReplicaSetController(client: $0, logger: Logger(label: "replicaset-controller")) }
        let deployments = controllerManager.map { DeploymentController(client: $0, logger: Logger(label: "deployment-controller")) }
        let daemonSets = controllerManager.map { DaemonSetController(client: $0, logger: Logger(label: "daemonset-controller")) }
        let jobs = controllerManager.map { JobController(client: $0, logger: Logger(label: "job-controller")) }
        let cronJobs = controllerManager.map { CronJobController(client: $0, logger: Logger(label: "cronjob-controller")) }
        await withDiscardingTaskGroup { children in
            if let scheduler { children.addTask { await scheduler.run() } }
            if let cronJobs { children.addTask { await cronJobs.run() } }
            if let jobs { children.addTask { await jobs.run() } }
            if let daemonSets { children.addTask { await daemonSets.run() } }
            if let replicaSets { children.addTask { await replicaSets.run() } }
            if let deployments { children.addTask { await deployments.run() } }
            if let edgeController { children.addTask { await edgeController.run() } }
            if let deviceController { children.addTask { await deviceController.run() } }
            children.addTask { [self, settings] in
                let workers = settings.modules.edgeController.upstreamWorkers
                await UpstreamWorkers.run(hub.incoming, width: workers, maxQueuedPerNode: 64, maxQueued: workers * 64, key: \.node) { [self] incoming in
                    if let edge = controllers.edge, await edge.handle(incoming) { return }
                    if let device = controllers.device, await device.handle(incoming) { return }
                    counters.withLock { $0.unroutedMessages += 1 }
                    logger.debug("no controller takes this message", metadata: ["node": "\(incoming.node)", "resource": "\(incoming.message.router.resource)"])
                }
            }
            running.withLock { $0 = Running(kubeconfig: kubeconfig, ports: ports, hub: hub, edgeController: edgeController, deviceController: deviceController,
                                             syncController: syncController) }
            logger.info("cloudcore ready", metadata: [
                "websocket": "\(ports.webSocket)", "quic": "\(ports.quic)", "https": "\(ports.https)", "kubeconfig": "\(kubeconfig)",
            ])
            await shutdown.wait()
            running.withLock { $0 = nil }
            children.cancelAll()
        }
        await hub.stop()
    }

    private func hubConfiguration() throws -> CloudHubConfiguration {
        let hub = settings.modules.cloudHub
        var configuration = CloudHubConfiguration(
            certificatesDirectory: hub.certificatesDirectory, outboxPath: hub.outbox.isEmpty ? nil : hub.outbox, bindAddress: hub.websocket.address,
            webSocketPort: hub.websocket.port, quicPort: hub.quic.enable ? hub.quic.port : nil, httpsPort: hub.https.port,
            advertiseAddresses: hub.advertiseAddress, nodeLimit: hub.nodeLimit, tokenValidity: .seconds(hub.tokenValidityHours * 3600))
        configuration.maxConnections = hub.maxConnections
        configuration.maxHandshakes = hub.maxHandshakes
        configuration.helloTimeout = .seconds(hub.helloTimeout)
        configuration.channel.keepaliveInterval = .seconds(hub.keepaliveInterval)
        configuration.channel.deadPeerTimeout = .seconds(hub.keepaliveInterval * 3)
        return configuration
    }
}
