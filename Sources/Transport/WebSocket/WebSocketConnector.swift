import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import NIOWebSocket

/// The client side of the WebSocket backend: connects a ``MessageChannel`` to a server.
public final class WebSocketConnector: Sendable {
    /// Connection settings with documented defaults.
    public struct Configuration: Sendable {
        /// Server address. Default `127.0.0.1`.
        public var host: String
        /// Server port. Default 10000.
        public var port: Int
        /// The upgrade path. Default `/channel`.
        public var path: String
        /// The name the server certificate must carry. Default `localhost`.
        public var serverName: String
        /// This side's certificate and the CA that signs the server.
        public var tls: TLSFiles
        /// How frames are masked. Default ``WebSocketMasking/zeroKey``.
        public var masking: WebSocketMasking
        /// TCP connect timeout. Default 10 s.
        public var connectTimeout: Duration

        /// Creates a configuration.
        public init(
            host: String = "127.0.0.1", port: Int = 10000, path: String = "/channel", serverName: String = "localhost",
            tls: TLSFiles, masking: WebSocketMasking = .zeroKey, connectTimeout: Duration = .seconds(10)
        ) {
            self.host = host
            self.port = port
            self.path = path
            self.serverName = serverName
            self.tls = tls
            self.masking = masking
            self.connectTimeout = connectTimeout
        }
    }

    private let configuration: Configuration
    private let group: any EventLoopGroup
    private let logger: Logger
    private let context: NIOSSLContext

    /// Creates a connector (loads the TLS files once).
    public init(
        configuration: Configuration, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        logger: Logger = Logger(label: "transport.websocket.client")
    ) throws {
        self.configuration = configuration
        self.group = group
        var logger = logger
        logger[metadataKey: "backend"] = "websocket"
        self.logger = logger
        context = try configuration.tls.makeClientContext()
    }

    /// Opens a connection for `channel` and attaches it once the upgrade completes. The HELLO
    /// exchange follows; use ``MessageChannel/waitUntilConnected(timeout:)`` to wait for it.
    @discardableResult
    public func connect(_ channel: MessageChannel) async throws -> WebSocketConnection {
        let configuration = configuration
        let context = context
        let logger = logger
        let maxMessage = channel.configuration.limits.maxFrameLength + 1024
        let nioChannel = try await ClientBootstrap(group: group)
            .connectTimeout(.nanoseconds(configuration.connectTimeout.nanoseconds))
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelOption(.writeBufferWaterMark, value: .init(low: 256 * 1024, high: 1024 * 1024))
            .channelInitializer { nioChannel in
                let upgraded = nioChannel.eventLoop.makePromise(of: Void.self)
                // A connection refused (or a pipeline that failed to build) never reaches the
                // handler's failure paths: the promise must not outlive the channel unresolved.
                nioChannel.closeFuture.whenComplete { _ in upgraded.fail(WebSocketUpgradeError.connectionClosed) }
                let requester = NIOLoopBound(
                    UpgradeRequestHandler(host: configuration.host, path: configuration.path, upgraded: upgraded),
                    eventLoop: nioChannel.eventLoop)
                let upgrader = NIOWebSocketClientUpgrader(
                    maxFrameSize: maxMessage, automaticErrorHandling: false,
                    upgradePipelineHandler: { nioChannel, _ in
                        nioChannel.eventLoop.makeCompletedFuture {
                            try WebSocketPipeline.install(
                                WebSocketLinkHandler(client: channel, masking: configuration.masking, logger: logger), in: nioChannel)
                        }
                    })
                return nioChannel.eventLoop.makeCompletedFuture {
                    let tls = try NIOSSLClientHandler(context: context, serverHostname: TLSFiles.sniHostname(for: configuration.serverName))
                    try nioChannel.pipeline.syncOperations.addHandler(tls)
                }.flatMap {
                    nioChannel.pipeline.addHTTPClientHandlers(
                        withClientUpgrade: (upgraders: [upgrader], completionHandler: { context in
                            requester.value.finish(context: context)
                        }))
                }.flatMapThrowing {
                    try nioChannel.pipeline.syncOperations.addHandler(requester.value)
                }
            }
            .connect(host: configuration.host, port: configuration.port)
            .get()
        try await nioChannel.eventLoop.flatSubmit {
            do {
                return try nioChannel.pipeline.syncOperations.handler(type: UpgradeRequestHandler.self).upgraded.futureResult
            } catch {
                // Already removed: the upgrade finished.
                return nioChannel.eventLoop.makeSucceededVoidFuture()
            }
        }.get()
        return WebSocketConnection(nioChannel: nioChannel)
    }
}

/// An open client connection.
public struct WebSocketConnection: Sendable {
    let nioChannel: any Channel

    /// Closes the TCP connection abruptly (no GOAWAY): what a network failure looks like.
    public func drop() async {
        try? await nioChannel.close()
    }

    /// Completes when the connection has closed.
    public func closed() async {
        _ = try? await nioChannel.closeFuture.valueUnlessCancelled()
    }
}

/// Sends the HTTP upgrade request once the connection is active and reports failure if the
/// connection closes before the upgrade completes.
private final class UpgradeRequestHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundOut = HTTPClientRequestPart

    let host: String
    let path: String
    let upgraded: EventLoopPromise<Void>

    init(host: String, path: String, upgraded: EventLoopPromise<Void>) {
        self.host = host
        self.path = path
        self.upgraded = upgraded
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { sendRequest(context: context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        sendRequest(context: context)
        context.fireChannelActive()
    }

    private var sent = false

    private func sendRequest(context: ChannelHandlerContext) {
        guard !sent else { return }
        sent = true
        var headers = HTTPHeaders()
        headers.add(name: "Host", value: host)
        headers.add(name: "Content-Length", value: "0")
        let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: path, headers: headers)
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
    }

    private var done = false

    /// The upgrade completed: leave the pipeline before WebSocket frames flow.
    func finish(context: ChannelHandlerContext) {
        guard !done else { return }
        done = true
        upgraded.succeed()
        if let own = try? context.pipeline.syncOperations.context(handler: self) {
            context.pipeline.syncOperations.removeHandler(context: own, promise: nil)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !done else { return context.fireChannelRead(data) }
        // A response that reaches us means the server declined the upgrade.
        fail(WebSocketUpgradeError.declined, context: context)
    }

    func channelInactive(context: ChannelHandlerContext) {
        fail(WebSocketUpgradeError.connectionClosed, context: context)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        fail(error, context: context)
    }

    private func fail(_ error: any Error, context: ChannelHandlerContext) {
        guard !done else { return context.fireErrorCaught(error) }
        done = true
        upgraded.fail(error)
        context.close(promise: nil)
    }
}

/// Why a WebSocket connection could not be opened.
public enum WebSocketUpgradeError: Error, Sendable {
    /// The server answered the upgrade request with a plain HTTP response.
    case declined
    /// The connection closed (e.g. TLS refused the certificate) before the upgrade completed.
    case connectionClosed
}
