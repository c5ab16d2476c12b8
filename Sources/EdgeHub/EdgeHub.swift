import Foundation
import Logging
import ServiceLifecycle
import NIOCore
import NIOPosix
import Synchronization
import Transport

/// The edge end of the node's channel to the cloud. It joins with a bootstrap token (once),
/// connects over QUIC and falls back to WebSocket when QUIC does not get through (returning to
/// QUIC when it does again), reconnects with jittered exponential backoff, renews the node
/// certificate before it expires, and routes: cloud messages to the bus's module groups, and
/// what modules send to the `edgehub` module (or to the `hub` group) to the cloud, reliable
/// messages kept in the outbox while offline.
public final class EdgeHub: Service, Sendable {
    public let configuration: EdgeHubConfiguration
    /// The channel to the cloud (outlives connections).
    public let channel: MessageChannel
    private let bus: MessageBus
    private let endpoint: BusEndpoint
    private let group: any EventLoopGroup
    private let logger: Logger
    private let credentials: NodeCredentials
    private let state = Mutex(State())

    /// The bus module name EdgeHub registers (KubeEdge's `websocket`/`edgehub`).
    public static let moduleName = "edgehub"
    /// The bus group EdgeHub registers.
    public static let moduleGroup = "hub"

    private struct State {
        var backend: TransportBackend?
        var connection: EdgeConnection?
        var lastError: String?
        var counters = EdgeHubCounters()
        var connectors: Connectors?
        var stopped = false
    }

    /// Connectors are kept (QUIC keeps its session tickets for 0-RTT reconnects) until the
    /// certificate changes.
    private struct Connectors {
        var quic: QUICConnector
        var quicProbe: QUICConnector
        var webSocket: WebSocketConnector
    }

    /// Creates the hub and registers it on `bus`; nothing connects before ``start()``.
    public init(configuration: EdgeHubConfiguration, bus: MessageBus, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
                logger: Logger = Logger(label: "edgehub")) throws {
        try CertificateAuthority.validateNodeName(configuration.nodeName)
        self.configuration = configuration
        self.bus = bus
        self.group = group
        var logger = logger
        logger[metadataKey: "node"] = "\(configuration.nodeName)"
        self.logger = logger
        var channelConfiguration = configuration.channel
        channelConfiguration.localNodeID = configuration.nodeName
        // A cloud message counts as delivered once its module has handled it (MetaManager: stored).
        channelConfiguration.lanesAcknowledgedAfterHandling = Set(Lane.standard.filter { $0 != .control })
        let outbox = try configuration.outboxPath.map { try Outbox(configuration: .init(path: $0)) }
        channel = try MessageChannel(configuration: channelConfiguration, outbox: outbox, logger: logger)
        credentials = NodeCredentials(directory: configuration.certificatesDirectory, node: configuration.nodeName)
        endpoint = bus.register(module: Self.moduleName, group: Self.moduleGroup)
    }

    // MARK: lifecycle

    /// Connects (joining first if there is no certificate), reconnects and routes, each a child
    /// task, until graceful shutdown or cancellation; then closes the connection and the
    /// channel (reliable messages stay in the outbox), leaves the bus and returns once every
    /// child has ended.
    public func run() async {
        let shutdown = ShutdownSignal()
        await withGracefulShutdownHandler {
            await withDiscardingTaskGroup { children in
                children.addTask { [self] in await connectLoop() }
                children.addTask { [self] in await rotationLoop() }
                for lane in Lane.standard where lane != .control {
                    children.addTask { [self] in await routeFromCloud(lane: lane) }
                    children.addTask { [self] in await routeToCloud(lane: lane) }
                }
                await shutdown.wait()
                let connection = state.withLock { state -> EdgeConnection? in
                    state.stopped = true
                    return state.connection
                }
                children.cancelAll()
                await channel.close()
                await connection?.drop()
                bus.unregister(module: Self.moduleName)
            }
        } onGracefulShutdown: {
            shutdown.trigger()
        }
    }

    /// The backend of the current connection, `nil` while disconnected.
    public var backend: TransportBackend? { state.withLock { $0.backend } }

    /// The last connection or join failure, in words.
    public var lastError: String? { state.withLock { $0.lastError } }

    /// What EdgeHub counted so far.
    public var statistics: EdgeHubCounters { state.withLock { $0.counters } }

    /// Breaks the current connection abruptly (no GOAWAY), as a network failure would; EdgeHub
    /// reconnects as usual. For operators and fault tests.
    public func dropConnection() async {
        await state.withLock { $0.connection }?.drop()
    }

    /// Sends `message` to the cloud directly (modules may also send through the bus).
    public func send(_ message: Message, on lane: Lane, delivery: Delivery) async throws {
        try await channel.send(message, on: lane, delivery: delivery)
    }

    // MARK: connecting

    private var isStopped: Bool { state.withLock { $0.stopped } || Task.isCancelled }

    private func connectLoop() async {
        var backoff = ReconnectBackoff(initial: configuration.initialBackoff, maximum: configuration.maxBackoff)
        while !isStopped {
            if let connection = await connectOnce() {
                backoff.reset()
                await supervise(connection)
                state.withLock { state in
                    state.backend = nil
                    state.connection = nil
                }
                if isStopped { return }
                logger.info("disconnected from the cloud", metadata: ["goaway": "\(channel.lastGoAway.map { "\($0.reason)" } ?? "none")"])
            }
            let delay = backoff.nextDelay()
            state.withLock { $0.counters.backoffs += 1 }
            try? await configuration.clock.sleep(for: delay)
        }
    }

    /// Ensures a certificate, then tries QUIC and, failing that, WebSocket.
    private func connectOnce() async -> EdgeConnection? {
        let connectors: Connectors
        do {
            connectors = try await ensureConnectors()
        } catch {
            record(error, while: "joining")
            return nil
        }
        if configuration.preferQUIC {
            do {
                return try await open(connectors.quic)
            } catch {
                record(error, while: "connecting over QUIC")
                state.withLock { $0.counters.quicFailures += 1 }
                logger.warning("QUIC did not connect; falling back to WebSocket", metadata: ["error": "\(error)"])
            }
        }
        do {
            return try await open(connectors.webSocket)
        } catch {
            record(error, while: "connecting over WebSocket")
            return nil
        }
    }

    private func open(_ connector: QUICConnector) async throws -> EdgeConnection {
        try await established(EdgeConnection(try await connector.connect(channel)))
    }

    private func open(_ connector: WebSocketConnector) async throws -> EdgeConnection {
        try await established(EdgeConnection(try await connector.connect(channel)))
    }

    /// Waits for `connection`'s HELLO exchange and records it as the current connection.
    private func established(_ connection: EdgeConnection) async throws -> EdgeConnection {
        let backend = connection.backend
        do {
            try await waitForHello(on: connection)
        } catch {
            await connection.drop()
            throw error
        }
        state.withLock { state in
            state.backend = backend
            state.connection = connection
            state.lastError = nil
            switch backend {
            case .quic: state.counters.quicConnections += 1
            case .webSocket: state.counters.webSocketConnections += 1
            }
        }
        logger.info("connected to the cloud", metadata: ["backend": "\(backend)"])
        return connection
    }

    /// Waits for the HELLO exchange; a connection the cloud closes first (with GOAWAY) fails
    /// with the cloud's reason.
    private func waitForHello(on connection: EdgeConnection) async throws {
        let deadline = ContinuousClock.now + configuration.helloTimeout
        let closed = ClosedFlag()
        try await withThrowingTaskGroup(of: Void.self) { watcher in
            watcher.addTask {
                await connection.closed()
                closed.set()
            }
            defer { watcher.cancelAll() }
            while !channel.isConnected {
                if closed.isSet {
                    throw EdgeHubError.refused(channel.lastGoAway?.reason ?? "the cloud closed the connection before HELLO")
                }
                guard ContinuousClock.now < deadline, !isStopped else { throw EdgeHubError.helloTimedOut(configuration.helloTimeout) }
                try await Task.sleep(for: .milliseconds(2))
            }
        }
    }

    /// Waits for `connection` to end; while on WebSocket, tries QUIC every
    /// ``EdgeHubConfiguration/quicRetryInterval`` and moves to it when it connects.
    private func supervise(_ connection: EdgeConnection) async {
        var current = connection
        while true {
            guard current.backend == .webSocket, configuration.preferQUIC else {
                await current.closed()
                return
            }
            let watched = current
            let upgraded: EdgeConnection? = await withTaskGroup(of: EdgeConnection?.self) { group in
                group.addTask { await watched.closed(); return nil }
                group.addTask { [self] in
                    while !Task.isCancelled {
                        try? await Task.sleep(for: configuration.quicRetryInterval)
                        if Task.isCancelled || isStopped { return nil }
                        guard let probe = state.withLock({ $0.connectors?.quicProbe }) else { continue }
                        // Without 0-RTT: the QUIC link replaces the WebSocket one only once its
                        // handshake has completed, so a failed probe leaves WebSocket untouched.
                        if let quic = try? await open(probe) { return quic }
                    }
                    return nil
                }
                let first = await group.next() ?? nil
                group.cancelAll()
                return first
            }
            // The QUIC link's attach closes the WebSocket one, which may be noticed first.
            let replacement = upgraded ?? state.withLock { state in
                state.connection.flatMap { $0.backend == .quic ? $0 : nil }
            }
            guard let replacement, channel.isConnected else { return }
            logger.info("QUIC works again; left WebSocket")
            await watched.drop()
            current = replacement
        }
    }

    private func record(_ error: any Error, while doing: String) {
        state.withLock { $0.lastError = "\(doing): \(error)" }
        logger.warning("\(doing) failed", metadata: ["error": "\(error)"])
    }

    // MARK: credentials

    private var certificateClient: CertificateClient {
        CertificateClient(
            host: configuration.cloudHost, port: configuration.httpsPort, serverName: configuration.effectiveServerName, group: group,
            timeout: .seconds(10))
    }

    /// The connectors for the current certificate, joining first if there is none.
    private func ensureConnectors() async throws -> Connectors {
        if let existing = state.withLock({ $0.connectors }) { return existing }
        if credentials.current() == nil {
            guard let token = configuration.token else { throw JoinError.noToken }
            try await credentials.join(token: token, client: certificateClient, logger: logger)
        }
        let connectors = try makeConnectors()
        state.withLock { $0.connectors = connectors }
        return connectors
    }

    private func makeConnectors() throws -> Connectors {
        let tls = credentials.tls
        let serverName = configuration.effectiveServerName
        let quicConfiguration = QUICConnector.Configuration(
            host: configuration.cloudHost, port: configuration.quicPort, serverName: serverName, tls: tls, connectTimeout: configuration.quicHandshakeTimeout)
        var probeConfiguration = quicConfiguration
        probeConfiguration.earlyData = false
        return Connectors(
            quic: try QUICConnector(configuration: quicConfiguration, group: group, logger: logger),
            quicProbe: try QUICConnector(configuration: probeConfiguration, group: group, logger: logger),
            webSocket: try WebSocketConnector(
                configuration: .init(
                    host: configuration.cloudHost, port: configuration.webSocketPort, path: configuration.webSocketPath, serverName: serverName, tls: tls),
                group: group, logger: logger))
    }

    /// Renews the node certificate at a random point of ``EdgeHubConfiguration/rotationWindow``
    /// of its life; new connections use the new one.
    private func rotationLoop() async {
        var renewAt: Date?
        while !isStopped {
            if let certificate = credentials.current() {
                let due = renewAt ?? NodeCredentials.renewalTime(of: certificate, window: configuration.rotationWindow)
                renewAt = due
                if configuration.clock.wallTime >= due {
                    do {
                        try await credentials.rotate(client: certificateClient, logger: logger)
                        let connectors = try makeConnectors()
                        state.withLock { state in
                            state.connectors = connectors
                            state.counters.rotations += 1
                        }
                        renewAt = nil
                        continue
                    } catch {
                        record(error, while: "renewing the node certificate")
                    }
                }
            }
            try? await configuration.clock.sleep(for: configuration.rotationCheckInterval)
        }
    }

    // MARK: routing

    /// Cloud → modules: by the group map; a response goes to the module waiting for it. The
    /// channel acknowledges a message to the cloud once the module has handled it, so a crash
    /// before MetaManager stored an object makes the cloud send it again.
    private func routeFromCloud(lane: Lane) async {
        for await message in channel.messages(on: lane) {
            let group = configuration.groupRoutes[message.router.group] ?? message.router.group
            let id = message.header.id
            do {
                try await endpoint.send(message, toGroup: group, on: lane) { [channel] in channel.acknowledge(id, on: lane) }
                state.withLock { $0.counters.toModules += 1 }
            } catch {
                channel.acknowledge(id, on: lane)
                state.withLock { $0.counters.undeliverable += 1 }
                logger.warning("no module for a cloud message", metadata: [
                    "group": "\(message.router.group)", "resource": "\(message.router.resource)", "error": "\(error)",
                ])
                if message.header.sync {
                    var answer = message.makeResponse(content: ByteBuffer(string: "no module of group \(group) on node \(configuration.nodeName)"))
                    answer.router.operation = MessageRouter.Operation.error
                    _ = try? channel.trySend(answer, on: lane, delivery: .bestEffort)
                }
            }
        }
    }

    /// Modules → cloud, with the lane's delivery class (coalesced by resource on
    /// ``EdgeHubConfiguration/coalescedLanes``; responses never are). A module's request while the cloud is
    /// unreachable is answered at once with an `error` (MetaManager then answers from its store)
    /// rather than waiting in the outbox for its timeout.
    /// A burst from the modules goes into the channel at once (one outbox commit for all of it).
    private func routeToCloud(lane: Lane) async {
        let delivery = configuration.deliveryByLane[lane.rawValue] ?? .bestEffort
        let coalesced = configuration.coalescedLanes.contains(lane)
        let deliveryOf = { (message: Message) -> Delivery in
            coalesced && message.header.parentID == nil ? .state(key: message.router.resource) : delivery
        }
        var messages = endpoint.messages(on: lane).makeAsyncIterator()
        while let first = await messages.next() {
            var batch: [Message] = []
            var next: Message? = first
            while let message = next {
                if message.header.sync, message.header.parentID == nil, !channel.isConnected {
                    var answer = message.makeResponse(content: ByteBuffer(string: "the cloud is unreachable"), source: Self.moduleName)
                    answer.router.operation = MessageRouter.Operation.error
                    try? await endpoint.send(answer, on: lane, delivery: .bestEffort)
                } else {
                    batch.append(message)
                }
                next = batch.count < configuration.maxBatch ? endpoint.pollMessage(on: lane) : nil
            }
            guard !batch.isEmpty else { continue }
            do {
                try await channel.send(contentsOf: batch, on: lane, delivery: deliveryOf)
                state.withLock { $0.counters.toCloud += batch.count }
            } catch {
                if isStopped { return }
                // One bad message (too large, say) refuses the batch before any of it is queued:
                // send them one by one so that only it is lost.
                for message in batch {
                    do {
                        try await channel.send(message, on: lane, delivery: deliveryOf(message))
                        state.withLock { $0.counters.toCloud += 1 }
                    } catch {
                        if isStopped { return }
                        state.withLock { $0.counters.refusedByChannel += 1 }
                        logger.warning("could not queue a message for the cloud", metadata: ["resource": "\(message.router.resource)", "error": "\(error)"])
                    }
                }
            }
        }
    }
}

/// Why EdgeHub could not use a connection.
public enum EdgeHubError: Error, Equatable, CustomStringConvertible {
    /// The cloud closed the connection with this reason (a GOAWAY) before the session began.
    case refused(String)
    /// The HELLO exchange did not complete in time.
    case helloTimedOut(Duration)

    public var description: String {
        switch self {
        case .refused(let reason): "the cloud refused the session: \(reason)"
        case .helloTimedOut(let timeout): "no HELLO from the cloud within \(timeout)"
        }
    }
}

/// What EdgeHub counted since it started.
public struct EdgeHubCounters: Sendable, Equatable {
    public var quicConnections = 0
    public var webSocketConnections = 0
    /// Module messages the channel refused (too large for its limits, say).
    public var refusedByChannel = 0
    /// QUIC attempts that failed before falling back.
    public var quicFailures = 0
    /// Waits between failed attempts.
    public var backoffs = 0
    /// Certificates renewed.
    public var rotations = 0
    /// Cloud messages handed to modules.
    public var toModules = 0
    /// Cloud messages no module took.
    public var undeliverable = 0
    /// Module messages queued for the cloud.
    public var toCloud = 0
}

/// Set once a connection is seen closed (by a child task), read by its parent.
private final class ClosedFlag: Sendable {
    private let flag = Atomic<Bool>(false)
    func set() { flag.store(true, ordering: .relaxed) }
    var isSet: Bool { flag.load(ordering: .relaxed) }
}
