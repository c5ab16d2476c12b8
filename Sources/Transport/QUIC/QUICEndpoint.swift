import CNGTCP2
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// One UDP socket carrying QUIC connections, demultiplexed by destination connection ID. A
/// server endpoint accepts connections from clients' Initial packets; a client endpoint dials.
/// Connections live on the socket's event loop; this type's methods hop there.
final class QUICEndpoint: @unchecked Sendable {
    struct Configuration {
        var credentials: QUICCredentials
        var alpn: String = QUICEndpoint.defaultALPN
        var options = QUICConnection.Options()
        /// Connections a server endpoint holds at most; Initial packets beyond are dropped. Default 10,000.
        var maxConnections = 10_000
        /// Connections a server endpoint lets handshake at once; Initial packets beyond are
        /// dropped (the client retries). Default 1,000.
        var maxHandshakes = 1_000
        /// Whether a server validates a client's address with a stateless Retry before it keeps
        /// any state for it (costs one round trip). Default on.
        var retry = true
        /// How long a Retry token stays valid. Default 10 s.
        var retryTokenLifetime: Duration = .seconds(10)
        /// How long an address token sent in NEW_TOKEN stays valid (a client presenting it
        /// skips the Retry). Default 1 hour.
        var addressTokenLifetime: Duration = .seconds(3600)
        /// Server: issues session tickets and accepts 0-RTT data from them (nil: neither).
        var ticketIssuer: QUICTicketIssuer?
        /// Whether packets are sent in batches the kernel segments (`UDP_SEGMENT`, GSO) and
        /// received coalesced (`UDP_GRO`), where the kernel supports it. Default on.
        var segmentationOffload = true

        /// Whether packets carry the ECN codepoint ngtcp2 chooses and received codepoints are
        /// read (`IP_RECVTOS`), so that the congestion controller learns of congestion marks
        /// rather than only of losses (RFC 9000 §13.4). ngtcp2 validates the path first and stops
        /// marking if it does not pass marks through. Default on.
        var explicitCongestionNotification = true

        /// Packets per GSO batch: the kernel takes at most 64 segments and 64 KiB.
        var maxSegments: Int {
            guard segmentationOffload, System.supportsUDPSegmentationOffload else { return 1 }
            return max(1, min(64, 65_000 / options.maxUDPPayloadSize))
        }

        /// Whether received datagrams may arrive coalesced (GRO).
        var receiveOffload: Bool { segmentationOffload && System.supportsUDPReceiveOffload }
    }

    /// What a server endpoint did with datagrams that belong to no connection.
    struct Statistics: Sendable, Equatable {
        /// Malformed, for no known connection, or beyond a limit.
        var dropped = 0
        /// Initial packets refused because `maxConnections` or `maxHandshakes` was reached.
        var refusedByLimit = 0
        /// Retry packets sent.
        var retries = 0
        /// Initial packets whose token did not validate (a bad Retry token drops the packet; a
        /// stale NEW_TOKEN token is treated as none).
        var invalidTokens = 0
        /// Initial packets whose NEW_TOKEN token proved the client's address (no Retry needed).
        var addressTokensAccepted = 0
        /// Connections that received 0-RTT stream data (resumed with early data accepted).
        var earlyDataConnections = 0
        /// Version Negotiation packets sent.
        var versionNegotiations = 0
        /// Errors the socket reported (a failed send or receive).
        var socketErrors = 0
        /// Server connections that closed before their handshake completed (timed out, or
        /// failed: a bad certificate, a TLS alert).
        var abandonedHandshakes = 0
        /// Server connections created (handshakes begun).
        var accepted = 0
    }

    /// The channel protocol's ALPN identifier.
    static let defaultALPN = "kubeedge-channel/1"
    /// Length of the connection IDs this side issues (short-header packets carry no length).
    static let connectionIDLength = 18

    private let sockets: NIOLockedValueBox<[any Channel]>
    private let handler: QUICEndpointHandler
    private let configuration: Configuration

    private init(socket: any Channel, handler: QUICEndpointHandler, configuration: Configuration) {
        sockets = NIOLockedValueBox([socket])
        self.handler = handler
        self.configuration = configuration
    }

    /// The socket in use (a client that rebound uses its newest).
    var socket: any Channel { sockets.withLockedValue { $0.last! } }

    /// The bound address.
    var localAddress: SocketAddress { socket.localAddress! }

    /// Binds a UDP socket. A server endpoint calls `onAccepted` (on the event loop) for every
    /// connection it accepts, before the connection's first datagram is processed.
    static func bind(
        host: String = "127.0.0.1", port: Int = 0, isServer: Bool, configuration: Configuration,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        onAccepted: ((QUICConnectionDriver) -> Void)? = nil
    ) async throws -> QUICEndpoint {
        let handler = QUICEndpointHandler(isServer: isServer, configuration: configuration, onAccepted: onAccepted)
        let socket = try await openSocket(host: host, port: port, configuration: configuration, handler: handler, group: group)
        return QUICEndpoint(socket: socket, handler: handler, configuration: configuration)
    }

    /// A UDP socket whose datagrams go to `handler`.
    private static func openSocket(
        host: String, port: Int, configuration: Configuration, handler: QUICEndpointHandler, group: any EventLoopGroup
    ) async throws -> any Channel {
        // No SO_REUSEADDR: on a UDP socket it lets the kernel hand the same ephemeral port to
        // two clients (datagrams then reach only one of them), and lets a second server bind a
        // port in use. UDP has no TIME_WAIT to wait out.
        var bootstrap = DatagramBootstrap(group: group)
            // Room for bursts of a fast sender between reads (the default is ~200 KiB).
            .channelOption(.socketOption(.so_rcvbuf), value: 4 << 20)
            .channelOption(.socketOption(.so_sndbuf), value: 4 << 20)
        if configuration.explicitCongestionNotification {
            bootstrap = bootstrap.channelOption(.explicitCongestionNotification, value: true)
        }
        if configuration.receiveOffload {
            bootstrap = bootstrap
                .channelOption(.datagramReceiveOffload, value: true)
                // Without the segment size a coalesced read could not be split into its datagrams.
                .channelOption(.datagramReceiveSegmentSize, value: true)
                .channelOption(.recvAllocator, value: FixedSizeRecvByteBufferAllocator(capacity: 65_536))
        }
        return try await bootstrap
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(handler) }
            }
            .bind(host: host, port: port).get()
    }

    /// Moves a client connection to a new UDP socket on a new local port, as a network change
    /// would: the connection migrates at once (the server validates the new path) and the old
    /// socket closes. Returns the new local address.
    @discardableResult
    func rebind(_ driver: QUICConnectionDriver) async throws -> SocketAddress {
        let old = socket
        let host = old.localAddress?.ipAddress ?? "0.0.0.0"
        // The same handler serves both sockets (one event loop), so it keeps routing by connection ID.
        let fresh = try await Self.openSocket(host: host, port: 0, configuration: configuration, handler: handler, group: old.eventLoop)
        do {
            try await fresh.eventLoop.submit { try driver.migrate(to: fresh) }.get()
        } catch {
            try? await fresh.close()
            throw error
        }
        sockets.withLockedValue { $0.append(fresh) }
        try? await old.close()
        return fresh.localAddress!
    }

    /// Dials `remote` (client endpoints). `prepare` runs on the event loop before the first
    /// flight is written, so callbacks it installs see every event of the connection.
    /// With a `ticket` the connection resumes that session and sends 0-RTT data; with an
    /// `addressToken` its Initial carries the token.
    func connect(
        to remote: SocketAddress, serverName: String = "localhost", ticket: QUICResumptionTicket? = nil, addressToken: [UInt8]? = nil,
        prepare: @escaping @Sendable (QUICConnectionDriver) -> Void = { _ in }
    ) async throws -> QUICConnectionDriver {
        let handler = handler
        let socket = socket
        return try await socket.eventLoop.submit {
            try handler.dial(remote, serverName: serverName, ticket: ticket, addressToken: addressToken, socket: socket, prepare: prepare)
        }.get()
    }

    /// Runs `body` on the event loop with the endpoint's drivers (tests and tools).
    func onEventLoop<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await socket.eventLoop.submit(body).get()
    }

    /// Connection-related entries the endpoint holds (connection IDs routed, handshakes tracked,
    /// connections awaiting a write). Call on the event loop (tests).
    var retainedStateCount: Int { handler.retainedStateCount }

    /// Datagrams dropped so far: malformed, for no known connection, or refused.
    func droppedDatagrams() async throws -> Int {
        try await statistics().dropped
    }

    /// What the endpoint did with datagrams that belong to no connection.
    func statistics() async throws -> Statistics {
        let handler = handler
        return try await onEventLoop { handler.statistics }
    }

    /// The same, read from any thread (the event loop may be a moment ahead).
    var statisticsSnapshot: Statistics { handler.statisticsSnapshot }

    /// Connections the endpoint holds.
    func connectionCount() async throws -> Int {
        let handler = handler
        return try await onEventLoop { handler.openConnections }
    }

    /// Closes the sockets (connections are dropped without CONNECTION_CLOSE).
    func close() async {
        for socket in sockets.withLockedValue({ $0 }) { try? await socket.close() }
    }

    /// Starts closing the sockets without waiting (from an event-loop callback).
    func closeWithoutWaiting() {
        for socket in sockets.withLockedValue({ $0 }) { socket.close(promise: nil) }
    }
}

/// The endpoint's pipeline handler: routes datagrams to connection drivers.
final class QUICEndpointHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>

    private let isServer: Bool
    private let configuration: QUICEndpoint.Configuration
    private let onAccepted: ((QUICConnectionDriver) -> Void)?
    private var drivers: [QUICConnectionID: QUICConnectionDriver] = [:]
    private var connectionCount = 0
    /// Server connections whose handshake had not completed when last looked at.
    private var handshaking: [ObjectIdentifier: QUICConnectionDriver] = [:]
    private let stateless: QUICStatelessReplies
    /// Connections that received datagrams in the current read burst.
    private var awaitingFlush: [QUICConnectionDriver] = []
    /// Written on the event loop only; the lock lets metrics read it from anywhere.
    private let statisticsBox = NIOLockedValueBox(QUICEndpoint.Statistics())
    private(set) var statistics: QUICEndpoint.Statistics {
        get { statisticsBox.withLockedValue { $0 } }
        set { statisticsBox.withLockedValue { $0 = newValue } }
    }
    var statisticsSnapshot: QUICEndpoint.Statistics { statisticsBox.withLockedValue { $0 } }
    var openConnections: Int { connectionCount }
    var retainedStateCount: Int { drivers.count + handshaking.count + awaitingFlush.count }

    init(isServer: Bool, configuration: QUICEndpoint.Configuration, onAccepted: ((QUICConnectionDriver) -> Void)?) {
        self.isServer = isServer
        self.configuration = configuration
        self.onAccepted = onAccepted
        stateless = QUICStatelessReplies(tokenLifetime: configuration.retryTokenLifetime, addressTokenLifetime: configuration.addressTokenLifetime)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = unwrapInboundIn(data)
        guard let segmentSize = envelope.metadata?.segmentSize, segmentSize > 0, envelope.data.readableBytes > segmentSize else {
            return receive(envelope, context: context)
        }
        // GRO coalesced several datagrams of one sender: each is a slice of the read buffer.
        var data = envelope.data
        let metadata = envelope.metadata.map { AddressedEnvelope<ByteBuffer>.Metadata(ecnState: $0.ecnState) }
        while data.readableBytes > 0, let segment = data.readSlice(length: min(segmentSize, data.readableBytes)) {
            receive(AddressedEnvelope(remoteAddress: envelope.remoteAddress, data: segment, metadata: metadata), context: context)
        }
    }

    private func receive(_ envelope: AddressedEnvelope<ByteBuffer>, context: ChannelHandlerContext) {
        let id: QUICConnectionID
        switch Self.classify(envelope.data) {
        case .invalid:
            statistics.dropped += 1
            return
        case .unsupportedVersion(let destination, let source):
            guard isServer, let packet = QUICStatelessReplies.versionNegotiation(destination: destination, source: source, allocator: context.channel.allocator)
            else { statistics.dropped += 1; return }
            statistics.versionNegotiations += 1
            context.writeAndFlush(NIOAny(AddressedEnvelope(remoteAddress: envelope.remoteAddress, data: packet)), promise: nil)
            return
        case .connection(let destination):
            id = destination
        }
        if let driver = drivers[id] {
            if !driver.awaitsFlush { awaitingFlush.append(driver) }
            driver.receive(envelope.data, from: envelope.remoteAddress, ecn: envelope.metadata?.ecnState, flushNow: false)
            return
        }
        guard isServer, let local = context.localAddress else { statistics.dropped += 1; return }
        var header = ngtcp2_pkt_hd()
        let verdict = envelope.data.withUnsafeReadableBytes { bytes in
            ngtcp2_accept(&header, bytes.baseAddress?.assumingMemoryBound(to: UInt8.self), bytes.count)
        }
        guard verdict == 0 || verdict == NGTCP2_ERR_RETRY else { statistics.dropped += 1; return }
        guard connectionCount < configuration.maxConnections, handshakesInProgress() < configuration.maxHandshakes else {
            statistics.dropped += 1
            statistics.refusedByLimit += 1
            return
        }
        var original: ngtcp2_cid?
        var addressValidated = false
        switch QUICStatelessReplies.kind(of: header) {
        case .addressToken where stateless.validatesAddressToken(header, from: envelope.remoteAddress):
            // A NEW_TOKEN token of an earlier connection: the address is proven, no Retry.
            addressValidated = true
            statistics.addressTokensAccepted += 1
        case .retry where configuration.retry:
            guard let validated = stateless.originalDestinationID(validating: header, from: envelope.remoteAddress) else {
                statistics.dropped += 1
                statistics.invalidTokens += 1
                return
            }
            original = validated
        case let kind:
            // No token, or one that does not validate (expired, from another server): as if none.
            if kind != .none { statistics.invalidTokens += 1 }
            if configuration.retry {
                guard let packet = stateless.retry(answering: header, from: envelope.remoteAddress, allocator: context.channel.allocator) else {
                    statistics.dropped += 1
                    return
                }
                statistics.retries += 1
                context.writeAndFlush(NIOAny(AddressedEnvelope(remoteAddress: envelope.remoteAddress, data: packet)), promise: nil)
                return
            }
        }
        do {
            let (connection, issued) = try QUICConnection.server(
                header: header, originalDestinationID: original, addressValidated: addressValidated, local: local,
                remote: envelope.remoteAddress, credentials: configuration.credentials, alpn: configuration.alpn,
                options: configuration.options, ticketIssuer: configuration.ticketIssuer)
            let driver = QUICConnectionDriver(
                connection: connection, socket: context.channel, remote: envelope.remoteAddress, maxSegments: configuration.maxSegments,
                marksECN: configuration.explicitCongestionNotification)
            let stateless = stateless
            connection.addressTokenIssuer = { [unowned driver] in stateless.addressToken(for: driver.remote) }
            connection.onEarlyData = { [weak self] in self?.statistics.earlyDataConnections += 1 }
            register(driver, ids: [issued, withUnsafePointer(to: header.dcid) { QUICConnectionID($0) }])
            handshaking[ObjectIdentifier(driver)] = driver
            statistics.accepted += 1
            onAccepted?(driver)
            driver.receive(envelope.data, from: envelope.remoteAddress, ecn: envelope.metadata?.ecnState)
        } catch {
            statistics.dropped += 1
        }
    }

    /// The read burst ended: each connection that received datagrams writes once.
    func channelReadComplete(context: ChannelHandlerContext) {
        let drivers = awaitingFlush
        awaitingFlush.removeAll(keepingCapacity: true)
        for driver in drivers where driver.awaitsFlush { driver.endReadBurst() }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A failed send or receive on the socket (the connections recover lost packets).
        statistics.socketErrors += 1
    }

    /// Server connections still handshaking. Entries leave when their connection closes, and
    /// completed handshakes are swept out only when the count reaches the limit, so an Initial
    /// costs a sweep (of at most `maxHandshakes` entries) only then.
    private func handshakesInProgress() -> Int {
        if handshaking.count >= configuration.maxHandshakes {
            handshaking = handshaking.filter { !$0.value.closed && !$0.value.connection.isHandshakeCompleted }
        }
        return handshaking.count
    }

    /// Creates, registers and starts a client connection.
    func dial(
        _ remote: SocketAddress, serverName: String, ticket: QUICResumptionTicket? = nil, addressToken: [UInt8]? = nil, socket: any Channel,
        prepare: (QUICConnectionDriver) -> Void
    ) throws -> QUICConnectionDriver {
        guard let local = socket.localAddress else { throw QUICError.closed(reason: "the socket is not bound") }
        let connection = try QUICConnection.client(
            local: local, remote: remote, credentials: configuration.credentials, alpn: configuration.alpn,
            serverName: serverName, options: configuration.options, ticket: ticket, addressToken: addressToken)
        let driver = QUICConnectionDriver(
            connection: connection, socket: socket, remote: remote, maxSegments: configuration.maxSegments,
            marksECN: configuration.explicitCongestionNotification)
        prepare(driver)
        register(driver, ids: connection.sourceConnectionIDs)
        driver.flush()
        return driver
    }

    private func register(_ driver: QUICConnectionDriver, ids: [QUICConnectionID]) {
        connectionCount += 1
        for id in ids { drivers[id] = driver }
        driver.connection.onNewConnectionID = { [weak self, weak driver] id in
            if let driver { self?.drivers[id] = driver }
        }
        driver.connection.onRetiredConnectionID = { [weak self] id in self?.drivers[id] = nil }
        let previous = driver.onClosed
        driver.onClosed = { [weak self, weak driver] error in
            previous?(error)
            guard let self, let driver else { return }
            self.connectionCount -= 1
            if self.isServer, !driver.connection.isHandshakeCompleted { self.statistics.abandonedHandshakes += 1 }
            self.handshaking[ObjectIdentifier(driver)] = nil
            self.drivers = self.drivers.filter { $0.value !== driver }
        }
    }

    /// What a datagram is, from its first packet's header.
    enum DatagramKind {
        /// A QUIC v1 packet for the connection with this destination ID (known or not).
        case connection(QUICConnectionID)
        /// A long-header packet of a version this side does not speak, large enough to deserve
        /// Version Negotiation; the client's connection IDs.
        case unsupportedVersion(destination: [UInt8], source: [UInt8])
        /// Not a QUIC packet this side can use.
        case invalid
    }

    static func classify(_ datagram: ByteBuffer) -> DatagramKind {
        // ngtcp2 asserts on an empty datagram (an abort, not an error): refuse it here.
        guard datagram.readableBytes > 0 else { return .invalid }
        return datagram.withUnsafeReadableBytes { bytes -> DatagramKind in
            var parsed = ngtcp2_version_cid()
            let result = ngtcp2_pkt_decode_version_cid(
                &parsed, bytes.baseAddress?.assumingMemoryBound(to: UInt8.self), bytes.count, QUICEndpoint.connectionIDLength)
            let destination = parsed.dcid.map { Array(UnsafeBufferPointer(start: $0, count: parsed.dcidlen)) }
            switch result {
            case 0:
                guard let destination else { return .invalid }
                return .connection(QUICConnectionID(destination))
            case NGTCP2_ERR_VERSION_NEGOTIATION:
                let source = parsed.scid.map { Array(UnsafeBufferPointer(start: $0, count: parsed.scidlen)) } ?? []
                return .unsupportedVersion(destination: destination ?? [], source: source)
            default:
                return .invalid
            }
        }
    }
}
