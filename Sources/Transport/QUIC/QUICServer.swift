import Logging
import NIOCore
import NIOPosix
import Synchronization

/// The server side of the QUIC backend: one UDP socket for every edge connection, TLS 1.3
/// with client certificates through GnuTLS, ALPN `kubeedge-channel/1`, and channel frames on
/// one unidirectional stream per lane (see ``QUICLink``).
public final class QUICServer: Sendable {
    /// Listener settings with documented defaults.
    public struct Configuration: Sendable {
        /// Address to bind. Default `127.0.0.1`.
        public var host: String
        /// UDP port to bind; 0 picks a free one. Default 10001 (KubeEdge's cloudHub QUIC port).
        public var port: Int
        /// Certificates and the CA that signs clients (the same files as the WebSocket server).
        public var tls: TLSFiles
        /// Frame limits for every connection; ``FrameLimits/laneCount`` also bounds the streams a
        /// peer may open.
        public var limits: FrameLimits
        /// Connections held at once; Initial packets beyond are dropped. Default 10,000.
        public var maxConnections: Int
        /// Connections handshaking at once; Initial packets beyond are dropped. Default 1,000.
        public var maxHandshakes: Int
        /// Whether clients' addresses are validated with a stateless Retry before the server
        /// keeps state for them (one extra round trip per connection). Default on.
        public var retry: Bool
        /// Time a connection has after its first packet to complete the handshake and send HELLO. Default 10 s.
        public var helloTimeout: Duration
        /// QUIC idle timeout. Default 60 s.
        public var idleTimeout: Duration
        /// The receive window each lane stream starts with, announced in the handshake before
        /// the HELLO says which channel the connection belongs to; the lane's channel window
        /// (``ChannelConfiguration/initialWindow``, ``ChannelConfiguration/bulkWindow``) is
        /// granted on its first data. Keep it at most the smallest channel window. Default 64 KiB.
        public var streamWindow: Int
        /// Unsent bytes a lane may queue in its stream before the channel holds further
        /// messages back. Default 256 KiB.
        public var sendBufferPerLane: Int
        /// Whether UDP segmentation offload is used where the kernel has it: packets sent in
        /// batches (`UDP_SEGMENT`) and received coalesced (`UDP_GRO`). Default on.
        public var segmentationOffload = true
        /// Whether the server issues session tickets and accepts 0-RTT data from them, so that a
        /// reconnecting edge's HELLO arrives with its first flight. A HELLO received in 0-RTT
        /// takes effect only once the handshake completes; a replayed first flight's early data
        /// is refused (GnuTLS anti-replay). Tickets are sealed with a key made at start, so they
        /// do not survive a restart. Default on.
        public var earlyData = true
        /// Whether packets are ECN-marked and received marks read, so congestion shows before
        /// loss (ngtcp2 validates the path and stops marking if marks do not pass). Default on.
        public var explicitCongestionNotification = true
        /// How long an address token the server sends in NEW_TOKEN spares a reconnecting client
        /// the Retry round trip. Default 1 hour.
        public var addressTokenLifetime: Duration = .seconds(3600)
        /// First flights whose 0-RTT data the anti-replay record remembers at once; beyond,
        /// early data is refused until entries expire. Default 100,000.
        public var maxRememberedEarlyData = 100_000
        /// GnuTLS's anti-replay check of 0-RTT data (tests turn it off to show what the server
        /// does with a replayed HELLO that gets past it).
        var replayProtection = true

        /// Creates a configuration.
        public init(
            host: String = "127.0.0.1", port: Int = 10001, tls: TLSFiles, limits: FrameLimits = FrameLimits(),
            maxConnections: Int = 10_000, maxHandshakes: Int = 1_000, retry: Bool = true, helloTimeout: Duration = .seconds(10), idleTimeout: Duration = .seconds(60),
            streamWindow: Int = 64 << 10, sendBufferPerLane: Int = 256 << 10
        ) {
            self.host = host
            self.port = port
            self.tls = tls
            self.limits = limits
            self.maxConnections = maxConnections
            self.maxHandshakes = maxHandshakes
            self.retry = retry
            self.helloTimeout = helloTimeout
            self.idleTimeout = idleTimeout
            self.streamWindow = streamWindow
            self.sendBufferPerLane = sendBufferPerLane
        }

        var linkOptions: QUICLink.Options {
            QUICLink.Options(sendBufferPerLane: sendBufferPerLane, initialStreamWindow: streamWindow, helloTimeout: helloTimeout)
        }
    }

    private let configuration: Configuration
    private let group: any EventLoopGroup
    private let resolver: SessionResolver
    private let logger: Logger
    private let endpoint = Mutex<QUICEndpoint?>(nil)

    /// Creates a server; `resolver` maps each connection's HELLO to its channel.
    public init(
        configuration: Configuration, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        logger: Logger = Logger(label: "transport.quic.server"), resolver: @escaping SessionResolver
    ) {
        self.configuration = configuration
        self.group = group
        self.resolver = resolver
        var logger = logger
        logger[metadataKey: "backend"] = "quic"
        self.logger = logger
    }

    /// Binds the UDP socket and starts accepting; returns the bound port.
    @discardableResult
    public func start() async throws -> Int {
        let configuration = configuration
        let bound = try await QUICEndpoint.bind(
            host: configuration.host, port: configuration.port, isServer: true, configuration: try endpointConfiguration(), group: group,
            onAccepted: acceptor())
        endpoint.withLock { $0 = bound }
        logger.info("listening", metadata: ["address": "\(bound.localAddress)"])
        return bound.localAddress.port ?? configuration.port
    }

    /// The endpoint settings this server's configuration stands for.
    private func endpointConfiguration() throws -> QUICEndpoint.Configuration {
        var endpointConfiguration = QUICEndpoint.Configuration(credentials: try QUICCredentials(configuration.tls))
        endpointConfiguration.options = QUICConnection.Options(channelStreams: configuration.limits.laneCount, streamWindow: configuration.streamWindow, idleTimeout: configuration.idleTimeout,
            handshakeTimeout: configuration.helloTimeout)
        endpointConfiguration.maxConnections = configuration.maxConnections
        endpointConfiguration.maxHandshakes = configuration.maxHandshakes
        endpointConfiguration.retry = configuration.retry
        endpointConfiguration.addressTokenLifetime = configuration.addressTokenLifetime
        if configuration.earlyData {
            endpointConfiguration.ticketIssuer = try QUICTicketIssuer(
                maxRemembered: configuration.maxRememberedEarlyData, replayProtection: configuration.replayProtection)
        }
        endpointConfiguration.segmentationOffload = configuration.segmentationOffload
        endpointConfiguration.explicitCongestionNotification = configuration.explicitCongestionNotification
        return endpointConfiguration
    }

    /// What becomes of each accepted connection: a link waiting for its HELLO.
    private func acceptor() -> (QUICConnectionDriver) -> Void {
        let configuration = configuration
        let resolver = resolver
        let logger = logger
        return { driver in
            _ = QUICLink.server(driver: driver, resolver: resolver, limits: configuration.limits, options: configuration.linkOptions, logger: logger)
        }
    }

    /// The handler the server's UDP socket feeds every datagram to, for a fuzz target to feed
    /// datagrams itself (through a channel of its own, without a socket).
    @_spi(Fuzzing)
    public func datagramHandlerForFuzzing() throws -> any ChannelInboundHandler {
        QUICEndpointHandler(isServer: true, configuration: try endpointConfiguration(), onAccepted: acceptor())
    }

    /// The number of open connections.
    public func connectionCount() async -> Int {
        guard let endpoint = endpoint.withLock({ $0 }) else { return 0 }
        return (try? await endpoint.connectionCount()) ?? 0
    }

    /// What the endpoint did with datagrams outside connections, and how connections began
    /// (tokens, 0-RTT); zero before ``start()``.
    func statistics() async throws -> QUICEndpoint.Statistics {
        guard let endpoint = endpoint.withLock({ $0 }) else { return QUICEndpoint.Statistics() }
        return try await endpoint.statistics()
    }

    /// What the listener refused and dropped before sessions existed (zero before ``start()``).
    public var counters: ListenerCounters {
        guard let statistics = endpoint.withLock({ $0 })?.statisticsSnapshot else { return ListenerCounters() }
        var counters = ListenerCounters()
        counters.accepted = statistics.accepted
        counters.refusedOverLimit = statistics.refusedByLimit
        counters.handshakeTimeouts = statistics.abandonedHandshakes
        counters.droppedDatagrams = statistics.dropped
        counters.retries = statistics.retries
        counters.invalidTokens = statistics.invalidTokens
        return counters
    }

    /// Stops: closes the socket; connections end without CONNECTION_CLOSE.
    public func stop() async {
        let bound = endpoint.withLock { endpoint in
            defer { endpoint = nil }
            return endpoint
        }
        await bound?.close()
    }
}
