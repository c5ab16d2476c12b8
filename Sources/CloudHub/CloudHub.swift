import Foundation
import Logging
import ServiceLifecycle
import NIOCore
import NIOPosix
import Synchronization
import Transport

/// The cloud end of every edge node's channel: WebSocket and QUIC listeners at once, the node
/// CA and its HTTPS endpoint, one ``MessageChannel`` per node (its bounded queues, `state(key)`
/// coalescing and outbox rows survive the node's disconnects), online/offline events, and the
/// access check on every message a node sends.
///
/// Layers above read ``incoming`` (all nodes, round-robin) and ``events``, and send with
/// ``send(_:to:on:delivery:)``; each node's queues are its own, so a slow node only ever makes
/// sends *to that node* wait.
public final class CloudHub: Service, Sendable {
    public let configuration: CloudHubConfiguration
    private let group: any EventLoopGroup
    private let logger: Logger
    private let inbound = InboundQueue()
    private let eventSink: NodeEventSink
    private let outbox: Outbox?
    private let sessions = Mutex<[String: NodeSession]>([:])
    private let grants = Mutex<[String: Set<EdgeObjectKey>]>([:])
    private let counters = Mutex(CloudHubCounters())
    private let running = Mutex<Running?>(nil)

    private struct Running {
        var credentials: HubCredentials
        var webSocket: WebSocketServer?
        var quic: QUICServer?
        var https: CertificateServer?
        var ports: Ports
    }

    /// The ports the listeners bound (0 where a listener is disabled).
    public struct Ports: Sendable, Equatable {
        public var webSocket: Int
        public var quic: Int
        public var https: Int
    }

    /// Creates a hub; nothing listens before ``start()``.
    public init(configuration: CloudHubConfiguration, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
                logger: Logger = Logger(label: "cloudhub")) throws {
        self.configuration = configuration
        self.group = group
        self.logger = logger
        eventSink = NodeEventSink(buffer: configuration.eventBuffer)
        outbox = try configuration.outboxPath.map { try Outbox(configuration: .init(path: $0)) }
    }

    // MARK: lifecycle

    /// Loads or creates the CA, issues the server certificate and starts the listeners.
    @discardableResult
    public func start() async throws -> Ports {
        let credentials = try HubCredentials.loadOrCreate(
            directory: configuration.certificatesDirectory, advertiseAddresses: configuration.advertiseAddresses)
        let resolver: SessionResolver = { [weak self] request in
            guard let self else { return .refuse(GoAway(code: .shuttingDown, reason: "the hub is stopping")) }
            return self.resolve(request)
        }
        var ports = Ports(webSocket: 0, quic: 0, https: 0)
        var webSocket: WebSocketServer?
        var quic: QUICServer?
        var https: CertificateServer?
        do {
            if let port = configuration.webSocketPort {
                let server = WebSocketServer(
                    configuration: .init(
                        host: configuration.bindAddress, port: port, path: configuration.webSocketPath, tls: credentials.tls,
                        limits: configuration.channel.limits, maxConnections: configuration.maxConnections, helloTimeout: configuration.helloTimeout),
                    group: group, logger: logger, resolver: resolver)
                ports.webSocket = try await server.start()
                webSocket = server
            }
            if let port = configuration.quicPort {
                let server = QUICServer(
                    configuration: .init(
                        host: configuration.bindAddress, port: port, tls: credentials.tls, limits: configuration.channel.limits,
                        maxConnections: configuration.maxConnections, maxHandshakes: configuration.maxHandshakes, helloTimeout: configuration.helloTimeout),
                    group: group, logger: logger, resolver: resolver)
                ports.quic = try await server.start()
                quic = server
            }
            if let port = configuration.httpsPort {
                let server = CertificateServer(
                    host: configuration.bindAddress, port: port, credentials: credentials, limits: configuration.https,
                    certificateValidity: configuration.nodeCertificateValidity, group: group, logger: logger)
                ports.https = try await server.start()
                https = server
            }
        } catch {
            await webSocket?.stop()
            await quic?.stop()
            await https?.stop()
            throw error
        }
        running.withLock { $0 = Running(credentials: credentials, webSocket: webSocket, quic: quic, https: https, ports: ports) }
        logger.info("cloudhub listening", metadata: [
            "websocket": "\(ports.webSocket)", "quic": "\(ports.quic)", "https": "\(ports.https)",
        ])
        return ports
    }

    /// Starts (unless ``start()`` did) and serves until graceful shutdown or cancellation, then
    /// stops as ``stop()`` does.
    public func run() async throws {
        if running.withLock({ $0 == nil }) { try await start() }
        let shutdown = ShutdownSignal()
        await withGracefulShutdownHandler {
            await shutdown.wait()
        } onGracefulShutdown: {
            shutdown.trigger()
        }
        await stop()
    }

    /// Closes every node's channel with a GOAWAY (their reliable messages stay in the outbox),
    /// stops the listeners and ends ``incoming`` and ``events``.
    public func stop() async {
        guard let stopping = running.withLock({ running -> Running? in defer { running = nil }; return running }) else { return }
        // Channels first, while the sockets are open: each node hears a GOAWAY and reconnects
        // elsewhere (or later) at once instead of waiting for its dead-peer timeout.
        let all = sessions.withLock { Array($0.values) }
        for session in all { await session.channel.close() }
        await stopping.webSocket?.stop()
        await stopping.quic?.stop()
        await stopping.https?.stop()
        inbound.close()
        eventSink.finish()
    }

    /// The CA that signs node certificates (set once started).
    public var authority: CertificateAuthority? { running.withLock { $0?.credentials.authority } }

    /// The TLS files the listeners use (server certificate, key, CA).
    public var tlsFiles: TLSFiles? { running.withLock { $0?.credentials.tls } }

    /// Issues `node` a key and certificate without the join exchange, and writes them with the
    /// CA as `node.key`, `node.crt` and `ca.crt` in `directory` (the files a join leaves): for
    /// provisioning, tests and benchmarks.
    public func issueNodeCredentials(for node: String, in directory: String) throws -> TLSFiles {
        guard let authority else { throw CloudHubError.notRunning }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let key = try PrivateKey.generate()
        let request = try CertificateSigningRequest(commonName: CertificateAuthority.nodeNamePrefix + node, key: key)
        let certificate = try authority.issueNodeCertificate(for: request, node: node, validity: configuration.nodeCertificateValidity)
        try SecretFile.write(try key.export(), to: directory + "/node.key")
        try Data(try certificate.export()).write(to: URL(fileURLWithPath: directory + "/node.crt"), options: .atomic)
        try Data(try authority.certificate.export()).write(to: URL(fileURLWithPath: directory + "/ca.crt"), options: .atomic)
        return TLSFiles(certificateChain: directory + "/node.crt", privateKey: directory + "/node.key", trustRoots: directory + "/ca.crt")
    }

    /// A bootstrap token for edges to join with, valid for ``CloudHubConfiguration/tokenValidity``.
    public func makeToken() throws -> String {
        guard let authority else { throw CloudHubError.notRunning }
        return try BootstrapToken.make(authority: authority, validity: configuration.tokenValidity)
    }

    // MARK: nodes

    /// Node events: online (with the backend) and offline.
    public var events: AsyncStream<NodeEvent> { eventSink.stream }

    /// What the hub counted so far, its listeners' refusals included.
    public var statistics: CloudHubCounters {
        var snapshot = counters.withLock { $0 }
        snapshot.droppedEvents = eventSink.droppedCount
        let channels = sessions.withLock { $0.values.map(\.channel.counters) }
        snapshot.channelProtocolErrors = channels.reduce(0) { $0 + $1.protocolErrors }
        snapshot.streamsOpened = channels.reduce(0) { $0 + $1.streamsOpened }
        snapshot.streamsRefused = channels.reduce(0) { $0 + $1.streamsRefused }
        snapshot.streamsReset = channels.reduce(0) { $0 + $1.streamsReset }
        snapshot.streamViolations = channels.reduce(0) { $0 + $1.streamViolations }
        let (webSocket, quic, https) = running.withLock { ($0?.webSocket?.counters, $0?.quic?.counters, $0?.https?.counters) }
        if let webSocket {
            snapshot.webSocketRefusedOverLimit = webSocket.refusedOverLimit
            snapshot.webSocketHandshakeTimeouts = webSocket.handshakeTimeouts
            snapshot.webSocketFailedHandshakes = webSocket.failedHandshakes
        }
        if let quic {
            snapshot.quicRefusedOverLimit = quic.refusedOverLimit
            snapshot.quicAbandonedHandshakes = quic.handshakeTimeouts
            snapshot.quicDroppedDatagrams = quic.droppedDatagrams
            snapshot.quicRetries = quic.retries
            snapshot.quicInvalidTokens = quic.invalidTokens
        }
        if let https {
            snapshot.certificateRefusedUnauthorized = https.refusedUnauthorized
            snapshot.certificateRefusedForbidden = https.refusedForbidden
            snapshot.certificateRefusedMalformed = https.refusedMalformed
            snapshot.certificateConnectionsOverLimit = https.connectionsOverLimit
            snapshot.certificateRequestTimeouts = https.requestTimeouts
            snapshot.certificateRequestsAnswered = https.answered
        }
        return snapshot
    }

    /// The nodes connected now.
    public var onlineNodes: [String] { sessions.withLock { $0.values.filter(\.isOnline).map(\.node) } }

    /// Whether `node` is connected, and over which backend.
    public func connection(of node: String) -> TransportBackend? { sessions.withLock { $0[node]?.backend } }

    /// The channel of `node`, if the hub holds a session for it (tools and tests).
    public func channel(of node: String) -> MessageChannel? { sessions.withLock { $0[node]?.channel } }

    /// How many node lanes have messages the hub's readers have not taken yet (tests).
    var readyInboundLaneCount: Int { inbound.readyLaneCount }

    /// Messages from all nodes that passed the access check, round-robin over nodes and lanes;
    /// order holds per node and lane for one reader. Ends when the hub stops.
    public var incoming: NodeMessages { NodeMessages(hub: self) }

    /// The messages of ``incoming``.
    public struct NodeMessages: AsyncSequence, Sendable {
        public typealias Element = NodeMessage
        let hub: CloudHub

        public func makeAsyncIterator() -> Iterator { Iterator(hub: hub) }

        public struct Iterator: AsyncIteratorProtocol {
            let hub: CloudHub
            public mutating func next() async -> NodeMessage? { await hub.nextMessage() }
            public mutating func next(isolation actor: isolated (any Actor)?) async -> NodeMessage? { await hub.nextMessage() }
        }
    }

    private func nextMessage() async -> NodeMessage? {
        while let (session, lane, message) = await inbound.next() {
            switch configuration.accessPolicy.check(message, from: session.node, owns: { owns(session.node, $0) }) {
            case .allowed:
                counters.withLock { $0.receivedMessages += 1 }
                return NodeMessage(node: session.node, lane: lane, message: message)
            case .refused(let reason):
                refuse(message, from: session, lane: lane, reason: reason)
            }
        }
        return nil
    }

    /// Logs and counts a refused message and tells the node why (best effort, on its lane).
    private func refuse(_ message: Message, from session: NodeSession, lane: Lane, reason: String) {
        counters.withLock { $0.refusedMessages += 1 }
        let (shouldLog, count) = session.countRefusal()
        if shouldLog {
            logger.warning("refused a message from a node", metadata: [
                "node": "\(session.node)", "reason": "\(reason)", "refusedSoFar": "\(count)",
            ])
        }
        var answer = message.makeResponse(content: ByteBuffer(string: reason))
        answer.router.source = "cloudhub"
        answer.router.operation = MessageRouter.Operation.error
        _ = try? session.channel.trySend(answer, on: lane, delivery: .bestEffort)
    }

    // MARK: sending

    /// Sends `message` to `node`, queueing it in the node's channel while the node is offline
    /// (reliable and `state(key)` messages; best effort ones are dropped). Suspends only while
    /// *this node's* lane or outbox is full.
    public func send(_ message: Message, to node: String, on lane: Lane, delivery: Delivery) async throws {
        let session = try outgoing(message, to: node)
        try await session.channel.send(message, on: lane, delivery: delivery)
        counters.withLock { $0.sentMessages += 1 }
    }

    /// Sends `messages` in order to `node`: one lock and, for reliable classes, one outbox
    /// commit per batch. Suspends only while this node's lane or outbox is full.
    public func send(contentsOf messages: [Message], to node: String, on lane: Lane, delivery: Delivery) async throws {
        try await send(contentsOf: messages, to: node, on: lane) { _ in delivery }
    }

    /// As above, each message with the delivery class `delivery` gives it (a `state` key per
    /// object, say).
    public func send(contentsOf messages: [Message], to node: String, on lane: Lane, delivery: (Message) -> Delivery) async throws {
        guard !messages.isEmpty else { return }
        for message in messages { try checkAndRecord(message, to: node) }
        try await session(for: node).channel.send(contentsOf: messages, on: lane, delivery: delivery)
        counters.withLock { $0.sentMessages += messages.count }
    }

    /// Sends without waiting: ``TrySendResult`` says whether the node's queue took it.
    public func trySend(_ message: Message, to node: String, on lane: Lane, delivery: Delivery) throws -> TrySendResult {
        let session = try outgoing(message, to: node)
        let result = try session.channel.trySend(message, on: lane, delivery: delivery)
        counters.withLock { $0.sentMessages += 1 }
        return result
    }

    /// Sends `message` to `node` as a request and waits for its response.
    public func request(_ message: Message, to node: String, on lane: Lane = .request, timeout: Duration? = nil) async throws -> Message {
        let session = try outgoing(message, to: node)
        return try await session.channel.request(message, on: lane, timeout: timeout)
    }

    /// Checks the address, records what the message assigns to the node and returns its session.
    private func outgoing(_ message: Message, to node: String) throws -> NodeSession {
        try checkAndRecord(message, to: node)
        return try session(for: node)
    }

    /// Refuses a message that names another node; grants the node what the message assigns.
    private func checkAndRecord(_ message: Message, to node: String) throws {
        let assigns: Bool
        switch message.router.operation {
        case "insert", "update", "upsert", "patch": assigns = true
        default: assigns = false
        }
        // One parse per message, and none for messages that neither name a node nor assign.
        if assigns || message.router.resource.hasPrefix("node/"), case .success(let path) = ResourcePath.parse(message.router.resource) {
            if let named = path.node, named != node {
                throw CloudHubError.misaddressed(node: node, resource: message.router.resource)
            }
            if assigns, let object = configuration.accessPolicy.object(in: path) { grant(object, to: node) }
        }
    }

    /// Lets `node` send about `object` (a module that knows the binding, e.g. after a restart).
    public func grant(_ object: EdgeObjectKey, to node: String) {
        _ = grants.withLock { $0[node, default: []].insert(object) }
    }

    /// Withdraws `object` from `node` (the object is gone for good).
    public func revoke(_ object: EdgeObjectKey, from node: String) {
        _ = grants.withLock { $0[node]?.remove(object) }
    }

    private func owns(_ node: String, _ object: EdgeObjectKey) -> Bool {
        grants.withLock { $0[node]?.contains(object) ?? false }
    }

    // MARK: sessions

    /// The session of `node`, created (with its channel and what the outbox held for it) if
    /// needed. Created under the sessions lock: the outbox hands a node's stored messages to
    /// one channel only, so two racing creations must not both take them.
    private func session(for node: String) throws -> NodeSession {
        if let existing = sessions.withLock({ $0[node] }) { return existing }
        do {
            try CertificateAuthority.validateNodeName(node)
        } catch {
            throw CloudHubError.invalidNodeName("\(error)")
        }
        var channelConfiguration = configuration.channel
        channelConfiguration.peerNodeID = node
        let (chosen, isNew) = try sessions.withLock { sessions throws -> (NodeSession, Bool) in
            if let raced = sessions[node] { return (raced, false) }
            guard sessions.count < configuration.nodeLimit else { throw CloudHubError.nodeLimitReached(configuration.nodeLimit) }
            let created = try MessageChannel(configuration: channelConfiguration, outbox: outbox, logger: logger)
            let session = NodeSession(node: node, channel: created, inbound: inbound, events: eventSink)
            sessions[node] = session
            return (session, true)
        }
        if isNew { chosen.channel.setObserver(chosen) }
        return chosen
    }

    /// Maps a new connection to its node's channel: the node's name comes from the certificate
    /// TLS verified, and the HELLO must claim the same node.
    private func resolve(_ request: SessionRequest) -> SessionDecision {
        let node: String
        switch NodeCertificateName.node(in: request.peerCertificate) {
        case .success(let name): node = name
        case .failure(let refusal): return refuseConnection(request, reason: refusal.reason)
        }
        guard request.hello.nodeID == node else {
            return refuseConnection(request, reason: "HELLO names node \(request.hello.nodeID) but the certificate is for node \(node)")
        }
        do {
            let session = try session(for: node)
            session.connecting(request)
            return .accept(session.channel)
        } catch {
            return refuseConnection(request, reason: "\(error)", code: .limitExceeded)
        }
    }

    private func refuseConnection(_ request: SessionRequest, reason: String, code: GoAway.Code = .unauthorized) -> SessionDecision {
        counters.withLock { $0.refusedConnections += 1 }
        logger.warning("refused a node connection", metadata: [
            "claimed": "\(request.hello.nodeID)", "backend": "\(request.backend)", "address": "\(request.remoteAddress.map { "\($0)" } ?? "?")",
            "reason": "\(reason)",
        ])
        return .refuse(GoAway(code: code, reason: reason))
    }
}
