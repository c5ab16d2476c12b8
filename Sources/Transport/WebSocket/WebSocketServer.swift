import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import NIOWebSocket
import Synchronization

/// The server side of the WebSocket backend: TLS 1.3 with client certificates, an HTTP/1.1
/// upgrade on ``Configuration/path``, then binary WebSocket messages of channel frames.
public final class WebSocketServer: Sendable {
    /// Listener settings with documented defaults.
    public struct Configuration: Sendable {
        /// Address to bind. Default `127.0.0.1`.
        public var host: String
        /// Port to bind; 0 picks a free one. Default 10000 (KubeEdge's cloudHub WebSocket port).
        public var port: Int
        /// The upgrade path. Default `/channel`.
        public var path: String
        /// Certificates and the CA that signs clients.
        public var tls: TLSFiles
        /// Frame limits for every connection (the WebSocket message limit derives from them).
        public var limits: FrameLimits
        /// Connections held at once; more are closed on accept. Default 10,000.
        public var maxConnections: Int
        /// Time a connection has from accept to finish TLS and the upgrade and send its HELLO;
        /// one that has not is closed and counted. Default 10 s.
        public var helloTimeout: Duration

        /// Creates a configuration.
        public init(
            host: String = "127.0.0.1", port: Int = 10000, path: String = "/channel", tls: TLSFiles,
            limits: FrameLimits = FrameLimits(), maxConnections: Int = 10_000, helloTimeout: Duration = .seconds(10)
        ) {
            self.host = host
            self.port = port
            self.path = path
            self.tls = tls
            self.limits = limits
            self.maxConnections = maxConnections
            self.helloTimeout = helloTimeout
        }
    }

    private let configuration: Configuration
    private let group: any EventLoopGroup
    private let resolver: SessionResolver
    private let logger: Logger
    private let listener = Mutex<(any Channel)?>(nil)
    private let connections = Atomic<Int>(0)
    private let listenerCounters = SharedListenerCounters()

    /// Creates a server; `resolver` maps each connection's HELLO to its channel.
    public init(
        configuration: Configuration, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        logger: Logger = Logger(label: "transport.websocket.server"), resolver: @escaping SessionResolver
    ) {
        self.configuration = configuration
        self.group = group
        self.resolver = resolver
        var logger = logger
        logger[metadataKey: "backend"] = "websocket"
        self.logger = logger
    }

    /// The number of open connections.
    public var connectionCount: Int { connections.load(ordering: .relaxed) }

    /// What the listener refused before sessions existed: connections over the limit, handshakes
    /// that timed out or failed.
    public var counters: ListenerCounters { listenerCounters.snapshot }

    /// Binds and starts accepting; returns the bound port.
    @discardableResult
    public func start() async throws -> Int {
        let context = try configuration.tls.makeServerContext()
        let configuration = configuration
        let resolver = resolver
        let logger = logger
        let counters = listenerCounters
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.writeBufferWaterMark, value: .init(low: 256 * 1024, high: 1024 * 1024))
            .childChannelInitializer { [self] channel in
                let open = connections.wrappingAdd(1, ordering: .relaxed).newValue
                channel.closeFuture.whenComplete { _ in self.connections.wrappingSubtract(1, ordering: .relaxed) }
                guard open <= configuration.maxConnections else {
                    let refused = counters.snapshot.refusedOverLimit
                    counters.update { $0.refusedOverLimit += 1 }
                    // One line per 1,000 refusals: a flood must not turn into a flood of log lines.
                    if refused % 1_000 == 0 {
                        logger.warning("refusing connections: maxConnections reached", metadata: [
                            "limit": "\(configuration.maxConnections)", "refusedSoFar": "\(refused + 1)",
                        ])
                    }
                    return channel.close()
                }
                counters.update { $0.accepted += 1 }
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: context))
                    try channel.pipeline.syncOperations.addHandler(HandshakeDeadlineHandler(timeout: configuration.helloTimeout, counters: counters))
                }.flatMap {
                    Self.installPlaintextPipeline(on: channel, configuration: configuration, logger: logger, resolver: resolver)
                }
            }
            .bind(host: configuration.host, port: configuration.port)
            .get()
        listener.withLock { $0 = channel }
        logger.info("listening", metadata: ["address": "\(channel.localAddress.map { "\($0)" } ?? "?")"])
        return channel.localAddress?.port ?? configuration.port
    }

    /// Stops accepting; open connections stay until their channels close them.
    public func stop() async {
        let channel = listener.withLock { channel in
            defer { channel = nil }
            return channel
        }
        try? await channel?.close()
    }
}

extension WebSocketServer {
    /// What a connection's pipeline does after TLS: HTTP/1.1 until the upgrade on
    /// ``Configuration/path``, then WebSocket messages of channel frames whose first must be a
    /// HELLO that `resolver` accepts. The fuzz targets feed raw bytes through it.
    @_spi(Fuzzing)
    public static func installPlaintextPipeline(on channel: any Channel, configuration: Configuration, logger: Logger,
                                                resolver: @escaping SessionResolver) -> EventLoopFuture<Void> {
        let upgrader = NIOWebSocketServerUpgrader(
            maxFrameSize: configuration.limits.maxFrameLength + 1024, automaticErrorHandling: false,
            shouldUpgrade: { channel, head in
                channel.eventLoop.makeSucceededFuture(head.uri == configuration.path ? HTTPHeaders() : nil)
            },
            upgradePipelineHandler: { channel, _ in
                channel.eventLoop.makeCompletedFuture {
                    try WebSocketPipeline.install(
                        WebSocketLinkHandler(server: resolver, limits: configuration.limits, helloTimeout: configuration.helloTimeout, logger: logger),
                        in: channel)
                }
            })
        return channel.pipeline.configureHTTPServerPipeline(withServerUpgrade: (upgraders: [upgrader], completionHandler: { _ in }))
    }
}

/// Pipeline set-up shared by both sides of the WebSocket backend.
enum WebSocketPipeline {
    /// NIO's upgrader installs a `WebSocketFrameEncoder` (which cannot be removed); our link writes
    /// whole frames itself (heads in the batch's headroom, gathered payloads), so it writes through
    /// a pass-through handler placed in front of the encoder, and `handler` joins at the end.
    static func install(_ handler: WebSocketLinkHandler, in channel: any Channel) throws {
        let operations = channel.pipeline.syncOperations
        let encoder = try operations.handler(type: WebSocketFrameEncoder.self)
        let writer = WebSocketRawWriter()
        try operations.addHandler(writer, position: .before(encoder))
        handler.rawWriter = try operations.context(handler: writer)
        try operations.addHandler(handler)
    }
}

/// Marks the place in the pipeline from which raw WebSocket bytes are written.
final class WebSocketRawWriter: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
}
