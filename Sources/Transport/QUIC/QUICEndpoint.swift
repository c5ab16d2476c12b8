import CNGTCP2
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
    }

    /// The channel protocol's ALPN identifier.
    static let defaultALPN = "kubeedge-channel/1"
    /// Length of the connection IDs this side issues (short-header packets carry no length).
    static let connectionIDLength = 18

    let socket: any Channel
    private let handler: QUICEndpointHandler

    private init(socket: any Channel, handler: QUICEndpointHandler) {
        self.socket = socket
        self.handler = handler
    }

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
        let socket = try await DatagramBootstrap(group: group)
            .channelOption(.socketOption(.so_reuseaddr), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(handler) }
            }
            .bind(host: host, port: port).get()
        return QUICEndpoint(socket: socket, handler: handler)
    }

    /// Dials `remote` (client endpoints). `prepare` runs on the event loop before the first
    /// flight is written, so callbacks it installs see every event of the connection.
    func connect(
        to remote: SocketAddress, serverName: String = "localhost",
        prepare: @escaping @Sendable (QUICConnectionDriver) -> Void = { _ in }
    ) async throws -> QUICConnectionDriver {
        let handler = handler
        let socket = socket
        return try await socket.eventLoop.submit {
            try handler.dial(remote, serverName: serverName, socket: socket, prepare: prepare)
        }.get()
    }

    /// Runs `body` on the event loop with the endpoint's drivers (tests and tools).
    func onEventLoop<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await socket.eventLoop.submit(body).get()
    }

    /// Datagrams dropped so far: malformed, for no known connection, or refused.
    func droppedDatagrams() async throws -> Int {
        let handler = handler
        return try await onEventLoop { handler.dropped }
    }

    /// Connections the endpoint holds.
    func connectionCount() async throws -> Int {
        let handler = handler
        return try await onEventLoop { handler.openConnections }
    }

    /// Closes the socket (connections are dropped without CONNECTION_CLOSE).
    func close() async {
        try? await socket.close()
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
    /// Datagrams dropped: malformed, unknown connection, or refused.
    private(set) var dropped = 0
    var openConnections: Int { connectionCount }

    init(isServer: Bool, configuration: QUICEndpoint.Configuration, onAccepted: ((QUICConnectionDriver) -> Void)?) {
        self.isServer = isServer
        self.configuration = configuration
        self.onAccepted = onAccepted
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = unwrapInboundIn(data)
        guard let id = Self.destinationID(of: envelope.data) else { dropped += 1; return }
        if let driver = drivers[id] {
            driver.receive(envelope.data, from: envelope.remoteAddress)
            return
        }
        guard isServer, connectionCount < configuration.maxConnections, let local = context.localAddress else { dropped += 1; return }
        var header = ngtcp2_pkt_hd()
        let verdict = envelope.data.withUnsafeReadableBytes { bytes in
            ngtcp2_accept(&header, bytes.baseAddress?.assumingMemoryBound(to: UInt8.self), bytes.count)
        }
        guard verdict == 0 else { dropped += 1; return }
        do {
            let (connection, issued) = try QUICConnection.server(
                header: header, local: local, remote: envelope.remoteAddress, credentials: configuration.credentials,
                alpn: configuration.alpn, options: configuration.options)
            let driver = QUICConnectionDriver(connection: connection, socket: context.channel, remote: envelope.remoteAddress)
            register(driver, ids: [issued, withUnsafePointer(to: header.dcid) { QUICConnectionID($0) }])
            onAccepted?(driver)
            driver.receive(envelope.data, from: envelope.remoteAddress)
        } catch {
            dropped += 1
        }
    }

    /// Creates, registers and starts a client connection.
    func dial(
        _ remote: SocketAddress, serverName: String, socket: any Channel, prepare: (QUICConnectionDriver) -> Void
    ) throws -> QUICConnectionDriver {
        guard let local = socket.localAddress else { throw QUICError.closed(reason: "the socket is not bound") }
        let connection = try QUICConnection.client(
            local: local, remote: remote, credentials: configuration.credentials, alpn: configuration.alpn,
            serverName: serverName, options: configuration.options)
        let driver = QUICConnectionDriver(connection: connection, socket: socket, remote: remote)
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
            self.drivers = self.drivers.filter { $0.value !== driver }
        }
    }

    /// The destination connection ID of a QUIC packet, or nil if the datagram is not one.
    static func destinationID(of datagram: ByteBuffer) -> QUICConnectionID? {
        datagram.withUnsafeReadableBytes { bytes -> QUICConnectionID? in
            var parsed = ngtcp2_version_cid()
            let result = ngtcp2_pkt_decode_version_cid(
                &parsed, bytes.baseAddress?.assumingMemoryBound(to: UInt8.self), bytes.count, QUICEndpoint.connectionIDLength)
            guard result == 0, let dcid = parsed.dcid else { return nil }
            return QUICConnectionID(Array(UnsafeBufferPointer(start: dcid, count: parsed.dcidlen)))
        }
    }
}
