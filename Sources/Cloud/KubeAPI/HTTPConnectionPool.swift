import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import Synchronization

/// A response read whole.
struct HTTPResponse: Sendable {
    var status: Int
    var body: [UInt8]
}

/// Keep-alive HTTP/1.1 (optionally TLS) connections to one server, each carrying one request at
/// a time and going back to the pool when its response has ended, as client-go's transport
/// keeps them: a controller's thousands of requests cost one TLS handshake per connection, not
/// one per request. A connection idle for longer than `idleTimeout` is closed rather than
/// reused (the server may be about to close it). An idempotent request whose reused connection
/// turns out closed before any response byte is sent again once on a new connection; a `POST`
/// is not (the server may have acted on it), and its caller sees the error.
final class HTTPConnectionPool: Sendable {
    struct Endpoint: Sendable {
        var host: String
        var port: Int
        var tls: NIOSSLContext?
        var serverName: String?
    }

    private struct Idle {
        var channel: any Channel
        var since: ContinuousClock.Instant
    }

    let endpoint: Endpoint
    let maxIdle: Int
    let idleTimeout: Duration
    /// A response body longer than this fails the request (and closes its connection).
    let maxResponseBytes: Int
    private let group: any EventLoopGroup
    private let idle = Mutex<[Idle]>([])
    /// Requests in flight at once (watches, which own their connection, are not counted).
    let slots: ConnectionSlots

    init(endpoint: Endpoint, group: any EventLoopGroup, maxIdle: Int = 16, maxConnections: Int = 32, idleTimeout: Duration = .seconds(30),
         maxResponseBytes: Int = 1 << 30) {
        self.endpoint = endpoint
        slots = ConnectionSlots(limit: maxConnections)
        self.maxResponseBytes = maxResponseBytes
        self.group = group
        self.maxIdle = maxIdle
        self.idleTimeout = idleTimeout
    }

    deinit {
        for connection in idle.withLock({ $0 }) { connection.channel.close(promise: nil) }
    }

    /// Sends the request and reads its whole response, once one of the `maxConnections` slots
    /// is free.
    func perform(_ head: HTTPRequestHead, body: [UInt8]?, idempotent: Bool) async throws -> HTTPResponse {
        try await slots.acquire()
        defer { slots.release() }
        return try await performHoldingSlot(head, body: body, idempotent: idempotent)
    }

    private func performHoldingSlot(_ head: HTTPRequestHead, body: [UInt8]?, idempotent: Bool) async throws -> HTTPResponse {
        if let reused = takeIdle() {
            do {
                let (response, keepAlive) = try await Self.exchange(on: reused, head, body: body)
                release(reused, keepAlive: keepAlive)
                return response
            } catch let closed as ConnectionClosedEarly where idempotent && !closed.receivedResponse {
                // Closed under us before answering: try once more on a new connection.
            }
        }
        let channel = try await connect()
        let (response, keepAlive) = try await Self.exchange(on: channel, head, body: body)
        release(channel, keepAlive: keepAlive)
        return response
    }

    /// A new connection with the HTTP client handlers (after TLS, when configured); the caller
    /// owns it (used for watches, which hold their connection to the end).
    func connect<Output: Sendable>(_ wrap: @escaping @Sendable (any Channel) throws -> Output) async throws -> Output {
        let endpoint = endpoint
        return try await ClientBootstrap(group: group)
            .connectTimeout(.seconds(10))
            .connect(host: endpoint.host, port: endpoint.port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls = endpoint.tls {
                        try channel.pipeline.syncOperations.addHandler(try NIOSSLClientHandler(context: tls, serverHostname: endpoint.serverName))
                    }
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    return try wrap(channel)
                }
            }
    }

    private func connect() async throws -> any Channel {
        try await connect { [maxResponseBytes] channel in
            try channel.pipeline.syncOperations.addHandler(ResponseCollector(maxBytes: maxResponseBytes))
            return channel
        }
    }

    private func takeIdle() -> (any Channel)? {
        let now = ContinuousClock.now
        let (usable, stale) = idle.withLock { idle -> ((any Channel)?, [any Channel]) in
            var stale: [any Channel] = []
            while let last = idle.popLast() {
                if last.channel.isActive, now - last.since < idleTimeout { return (last.channel, stale) }
                stale.append(last.channel)
            }
            return (nil, stale)
        }
        for channel in stale { channel.close(promise: nil) }
        return usable
    }

    private func release(_ channel: any Channel, keepAlive: Bool) {
        let kept = keepAlive && channel.isActive && idle.withLock { idle in
            guard idle.count < maxIdle else { return false }
            idle.append(Idle(channel: channel, since: .now))
            return true
        }
        if !kept { channel.close(promise: nil) }
    }

    private static func exchange(on channel: any Channel, _ head: HTTPRequestHead, body: [UInt8]?) async throws -> (HTTPResponse, Bool) {
        let promise = channel.eventLoop.makePromise(of: (HTTPResponse, Bool).self)
        channel.eventLoop.execute {
            // A connection that closed before this request never sees channelInactive again.
            guard channel.isActive, let collector = try? channel.pipeline.syncOperations.handler(type: ResponseCollector.self) else {
                promise.fail(ConnectionClosedEarly(receivedResponse: false))
                return
            }
            collector.expect(promise)
            let bound = NIOLoopBound(collector, eventLoop: channel.eventLoop)
            channel.write(HTTPClientRequestPart.head(head), promise: nil)
            if let body { channel.write(HTTPClientRequestPart.body(.byteBuffer(ByteBuffer(bytes: body))), promise: nil) }
            channel.writeAndFlush(HTTPClientRequestPart.end(nil)).whenFailure { _ in bound.value.fail(ConnectionClosedEarly(receivedResponse: false)) }
        }
        do {
            return try await promise.futureResult.get()
        } catch {
            channel.close(promise: nil)
            throw error
        }
    }
}

/// A response longer than the client takes.
struct ResponseTooLarge: Error, CustomStringConvertible {
    var limit: Int
    var description: String { "the response is longer than the client's limit of \(limit) bytes (KubeClient maxResponseBytes)" }
}

/// The connection ended before its response did.
struct ConnectionClosedEarly: Error, CustomStringConvertible {
    /// Whether any of the response had arrived.
    var receivedResponse: Bool
    var description: String { "the server closed the connection before answering" }
}

/// Collects one response at a time for ``HTTPConnectionPool``.
private final class ResponseCollector: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart

    private let maxBytes: Int
    private var promise: EventLoopPromise<(HTTPResponse, Bool)>?
    private var response = HTTPResponse(status: 0, body: [])

    init(maxBytes: Int) {
        self.maxBytes = maxBytes
    }
    private var keepAlive = true
    private var receivedResponse = false

    func expect(_ promise: EventLoopPromise<(HTTPResponse, Bool)>) {
        self.promise = promise
        response = HTTPResponse(status: 0, body: [])
        receivedResponse = false
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            receivedResponse = true
            response.status = Int(head.status.code)
            keepAlive = head.isKeepAlive
        case .body(let buffer):
            guard response.body.count + buffer.readableBytes <= maxBytes else {
                fail(ResponseTooLarge(limit: maxBytes))
                context.close(promise: nil)
                return
            }
            response.body += buffer.readableBytesView
        case .end:
            let promise = promise
            self.promise = nil
            promise?.succeed((response, keepAlive))
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        fail(ConnectionClosedEarly(receivedResponse: receivedResponse))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        fail(error)
        context.close(promise: nil)
    }

    /// Fails the pending response, if any.
    func fail(_ error: any Error) {
        let promise = promise
        self.promise = nil
        promise?.fail(error)
    }
}
