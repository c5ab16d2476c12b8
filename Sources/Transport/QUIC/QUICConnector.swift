import CNGTCP2
import Logging
import NIOCore
import NIOPosix

/// The client side of the QUIC backend: connects a ``MessageChannel`` to a ``QUICServer``
/// from a UDP socket of its own.
public final class QUICConnector: Sendable {
    /// Connection settings with documented defaults.
    public struct Configuration: Sendable {
        /// Server address. Default `127.0.0.1`.
        public var host: String
        /// Server UDP port. Default 10001.
        public var port: Int
        /// The name the server certificate must carry. Default `localhost`.
        public var serverName: String
        /// This side's certificate and the CA that signs the server.
        public var tls: TLSFiles
        /// Time the handshake may take. Default 10 s.
        public var connectTimeout: Duration
        /// QUIC idle timeout. Default 60 s.
        public var idleTimeout: Duration
        /// Unsent bytes a lane may queue in its stream before the channel holds further
        /// messages back. Default 256 KiB.
        public var sendBufferPerLane: Int
        /// Whether UDP segmentation offload (GSO/GRO) is used where the kernel has it. Default on.
        public var segmentationOffload = true
        /// Whether a reconnect resumes the previous TLS session and sends its HELLO in 0-RTT,
        /// with the first flight (saving a round trip). Only the HELLO goes in 0-RTT; messages
        /// wait for the handshake. The server holds a replayed HELLO until the handshake proves
        /// the peer, and GnuTLS's anti-replay refuses a repeated first flight's early data.
        /// Default on.
        public var earlyData = true
        /// Whether packets are ECN-marked and received marks read, so congestion shows before
        /// loss (ngtcp2 validates the path and stops marking if marks do not pass). Default on.
        public var explicitCongestionNotification = true

        /// Creates a configuration.
        public init(
            host: String = "127.0.0.1", port: Int = 10001, serverName: String = "localhost", tls: TLSFiles,
            connectTimeout: Duration = .seconds(10), idleTimeout: Duration = .seconds(60), sendBufferPerLane: Int = 256 << 10
        ) {
            self.host = host
            self.port = port
            self.serverName = serverName
            self.tls = tls
            self.connectTimeout = connectTimeout
            self.idleTimeout = idleTimeout
            self.sendBufferPerLane = sendBufferPerLane
        }
    }

    private let configuration: Configuration
    private let group: any EventLoopGroup
    private let logger: Logger
    private let credentials: QUICCredentials
    /// Session tickets and address tokens from this connector's earlier connections.
    let sessions = QUICSessionCache()

    /// Creates a connector (loads the TLS files once).
    public init(
        configuration: Configuration, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        logger: Logger = Logger(label: "transport.quic.client")
    ) throws {
        self.configuration = configuration
        self.group = group
        var logger = logger
        logger[metadataKey: "backend"] = "quic"
        self.logger = logger
        credentials = try QUICCredentials(configuration.tls)
    }

    /// Opens a connection for `channel` and attaches it once the QUIC handshake completes. The
    /// HELLO exchange follows; use ``MessageChannel/waitUntilConnected(timeout:)`` to wait for it.
    /// Throws if the handshake fails or takes longer than ``Configuration/connectTimeout``.
    @discardableResult
    public func connect(_ channel: MessageChannel) async throws -> QUICChannelConnection {
        let configuration = configuration
        let logger = logger
        // This side knows its channel before the handshake: its lanes' streams start with the
        // smallest lane window and larger lanes get the rest on their first data.
        let streamWindow = min(channel.configuration.initialWindow, channel.configuration.bulkWindow)
        var endpointConfiguration = QUICEndpoint.Configuration(credentials: credentials)
        endpointConfiguration.segmentationOffload = configuration.segmentationOffload
        endpointConfiguration.explicitCongestionNotification = configuration.explicitCongestionNotification
        endpointConfiguration.options = QUICConnection.Options(
            channelStreams: channel.configuration.limits.laneCount, streamWindow: streamWindow, idleTimeout: configuration.idleTimeout,
            handshakeTimeout: configuration.connectTimeout)
        let remote = try SocketAddress.makeAddressResolvingHost(configuration.host, port: configuration.port)
        let endpoint = try await QUICEndpoint.bind(
            host: remote.protocol == .inet6 ? "::" : "0.0.0.0", port: 0, isServer: false, configuration: endpointConfiguration, group: group)
        let handshake = HandshakeOutcome(endpoint.socket.eventLoop.makePromise(of: Void.self))
        let options = QUICLink.Options(sendBufferPerLane: configuration.sendBufferPerLane, initialStreamWindow: streamWindow)
        let sessions = sessions
        let server = "\(configuration.host):\(configuration.port)/\(configuration.serverName)"
        let stored = sessions.take(for: server)
        let ticket = configuration.earlyData ? stored.ticket : nil
        let driver: QUICConnectionDriver
        do {
            driver = try await endpoint.connect(
                to: remote, serverName: configuration.serverName, ticket: ticket, addressToken: stored.addressToken
            ) { driver in
                driver.connection.onSessionTicket = { ticket in sessions.store(ticket, for: server) }
                driver.connection.onAddressToken = { token in sessions.store(addressToken: token, for: server) }
                // Set before the link exists: the link chains its own close handling onto this.
                driver.onClosed = { [unowned driver] error in
                    if handshake.fail(error ?? QUICError.closed(reason: "closed during the handshake")) {
                        logger.info("QUIC handshake failed", metadata: ["local": "\(driver.socket.localAddress.map { "\($0)" } ?? "?")", "error": "\(error.map { "\($0)" } ?? "closed")", "connection": "\(driver.statistics)"])
                    }
                    endpoint.closeWithoutWaiting()
                }
                driver.connection.onHandshakeCompleted = { [unowned driver] in
                    if ticket == nil { _ = QUICLink.client(driver: driver, channel: channel, options: options, logger: logger) }
                    handshake.succeed()
                }
                // Resuming: the link (and so the HELLO) goes out with the first flight, in 0-RTT.
                if ticket != nil { _ = QUICLink.client(driver: driver, channel: channel, options: options, logger: logger) }
            }
        } catch {
            await endpoint.close()
            throw error
        }
        let timeout = endpoint.socket.eventLoop.scheduleTask(in: .nanoseconds(configuration.connectTimeout.nanoseconds)) {
            handshake.fail(QUICError.closed(reason: "the handshake did not complete within \(configuration.connectTimeout)"))
        }
        do {
            try await handshake.promise.futureResult.get()
            timeout.cancel()
        } catch {
            timeout.cancel()
            _ = try? await endpoint.onEventLoop { driver.close(code: GoAway.Code.normal.rawValue, reason: "handshake timed out") }
            await endpoint.close()
            throw error
        }
        return QUICChannelConnection(endpoint: endpoint, driver: driver)
    }
}

/// An open client connection of the QUIC backend.
public struct QUICChannelConnection: Sendable {
    let endpoint: QUICEndpoint
    let driver: QUICConnectionDriver

    /// Ends the connection at once, without GOAWAY (a bare CONNECTION_CLOSE, what a TCP reset
    /// is to the WebSocket backend), and closes its socket.
    public func drop() async {
        let driver = driver
        _ = try? await endpoint.onEventLoop { driver.close() }
        await endpoint.close()
    }

    /// Moves the connection to a new local UDP port, as a network change would; the session
    /// continues on the new path once the server has validated it. Returns the new address.
    @discardableResult
    public func rebind() async throws -> SocketAddress {
        try await endpoint.rebind(driver)
    }

    /// Starts a QUIC key update (RFC 9001 §6): both sides move to fresh packet-protection keys
    /// without interrupting the session.
    public func updateKeys() async throws {
        let driver = driver
        try await endpoint.onEventLoop {
            try driver.connection.initiateKeyUpdate(now: cngtcp2_timestamp())
            driver.flush()
        }
    }

    /// A snapshot of the connection's path and socket counters.
    public func statistics() async throws -> QUICConnectionStatistics {
        let driver = driver
        return try await endpoint.onEventLoop { driver.statistics }
    }

    /// Completes when the connection has closed.
    public func closed() async {
        _ = try? await endpoint.socket.closeFuture.valueUnlessCancelled()
    }
}

/// Settles a connect's handshake promise once: the first outcome wins.
private final class HandshakeOutcome: @unchecked Sendable {
    let promise: EventLoopPromise<Void>
    private var settled = false

    init(_ promise: EventLoopPromise<Void>) { self.promise = promise }

    /// Called on the promise's event loop.
    func succeed() {
        guard !settled else { return }
        settled = true
        promise.succeed()
    }

    /// Called on the promise's event loop. Returns whether this outcome settled the promise.
    @discardableResult
    func fail(_ error: any Error) -> Bool {
        guard !settled else { return false }
        settled = true
        promise.fail(error)
        return true
    }
}
