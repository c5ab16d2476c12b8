import Logging
import NIOCore
import NIOSSL
import NIOWebSocket

/// A ``ChannelLink`` over one upgraded WebSocket connection. Used only on its event loop.
final class WebSocketLink: ChannelLink, @unchecked Sendable {
    let nioChannel: any Channel
    /// The context writes start from: in front of NIO's frame encoder.
    let writer: ChannelHandlerContext
    let isClient: Bool
    let masking: WebSocketMasking
    private var closing = false

    init(nioChannel: any Channel, writer: ChannelHandlerContext, isClient: Bool, masking: WebSocketMasking) {
        self.nioChannel = nioChannel
        self.writer = writer
        self.isClient = isClient
        self.masking = masking
    }

    var eventLoop: any EventLoop { nioChannel.eventLoop }

    /// The DER bytes of the certificate the peer authenticated with in the TLS handshake, if
    /// any. Call on the event loop.
    func peerCertificate() -> [UInt8]? {
        guard let tls = try? nioChannel.pipeline.syncOperations.handler(type: NIOSSLServerHandler.self) else {
            return (try? nioChannel.pipeline.syncOperations.handler(type: NIOSSLClientHandler.self))
                .flatMap { try? $0.peerCertificate?.toDERBytes() }
        }
        return try? tls.peerCertificate?.toDERBytes()
    }
    var headroom: Int { WebSocketFrameHead.maxLength }
    var allocator: ByteBufferAllocator { nioChannel.allocator }
    var isWritable: Bool { nioChannel.isWritable && !closing }

    private var maskingKey: (UInt8, UInt8, UInt8, UInt8)? {
        guard isClient else { return nil }
        switch masking {
        case .zeroKey: return (0, 0, 0, 0)
        case .randomKey: return (.random(in: 0 ... .max), .random(in: 0 ... .max), .random(in: 0 ... .max), .random(in: 0 ... .max))
        }
    }

    func writeBatch(_ parts: inout [ByteBuffer]) {
        defer { parts = [] }
        guard !closing, !parts.isEmpty else { return }
        let total = parts.reduce(0) { $0 + $1.readableBytes }
        let key = maskingKey
        if let key, key != (0, 0, 0, 0) {
            // A random key means every payload byte changes: one copy, then mask in place.
            var joined = allocator.buffer(capacity: total + WebSocketFrameHead.maxLength)
            let headLength = WebSocketFrameHead.length(payloadLength: total, masked: true)
            joined.moveWriterIndex(forwardBy: headLength)
            for var part in parts { joined.writeBuffer(&part) }
            WebSocketFrameHead.write(opcode: WebSocketFrameHead.opcodeBinary, payloadLength: total, maskingKey: key, into: &joined, at: 0)
            WebSocketFrameHead.mask(&joined, from: headLength, key: key)
            writer.writeAndFlush(NIOAny(joined), promise: nil)
            return
        }
        var head = parts.removeFirst()
        let headLength = WebSocketFrameHead.length(payloadLength: total, masked: key != nil)
        precondition(head.readerIndex >= headLength, "the channel reserves headroom for the WebSocket head")
        head.moveReaderIndex(to: head.readerIndex - headLength)
        WebSocketFrameHead.write(opcode: WebSocketFrameHead.opcodeBinary, payloadLength: total, maskingKey: key, into: &head, at: head.readerIndex)
        writer.write(NIOAny(head), promise: nil)
        for part in parts { writer.write(NIOAny(part), promise: nil) }
        writer.flush()
    }

    func close(sending goAway: GoAway?) {
        guard !closing else { return }
        closing = true
        let channel = nioChannel
        guard channel.isActive else { return }
        if let goAway {
            var frame = ByteBuffer()
            FrameCodec.encode(.goAway(goAway), into: &frame)
            writer.write(NIOAny(WebSocketFrameHead.frame(opcode: WebSocketFrameHead.opcodeBinary, payload: frame, maskingKey: maskingKey)), promise: nil)
        }
        var status = ByteBuffer()
        status.writeInteger(UInt16(goAway.map { $0.code == .normal ? 1000 : 1008 } ?? 1000))
        let closed = channel.eventLoop.makePromise(of: Void.self)
        closed.futureResult.whenComplete { _ in channel.close(promise: nil) }
        writer.writeAndFlush(NIOAny(WebSocketFrameHead.frame(opcode: WebSocketFrameHead.opcodeClose, payload: status, maskingKey: maskingKey)), promise: closed)
    }

    /// Writes a raw control frame (pong, close) outside the channel's batching.
    func writeControl(opcode: UInt8, payload: ByteBuffer) {
        writer.writeAndFlush(NIOAny(WebSocketFrameHead.frame(opcode: opcode, payload: payload, maskingKey: maskingKey)), promise: nil)
    }
}

/// Resolves the channel a new server connection belongs to from its HELLO; `nil` refuses it.
/// Bridges WebSocket frames to a ``MessageChannel``: binary messages carry whole channel frames.
final class WebSocketLinkHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = WebSocketFrame

    private let limits: FrameLimits
    private let resolver: SessionResolver?
    private var channel: MessageChannel?
    private let masking: WebSocketMasking
    private let logger: Logger
    private let helloTimeout: Duration
    private var link: WebSocketLink?
    /// Set by ``WebSocketPipeline/install(_:in:)`` before the handler is added.
    var rawWriter: ChannelHandlerContext?
    private var fragments: ByteBuffer?
    private var helloTimer: Scheduled<Void>?

    /// A client-side handler: attaches `channel` as soon as it is added.
    init(client channel: MessageChannel, masking: WebSocketMasking, logger: Logger) {
        self.channel = channel
        self.resolver = nil
        self.limits = channel.configuration.limits
        self.masking = masking
        self.logger = logger
        self.helloTimeout = .seconds(0)
    }

    /// A server-side handler: the first message must be a HELLO that `resolver` accepts.
    init(server resolver: @escaping SessionResolver, limits: FrameLimits, helloTimeout: Duration, logger: Logger) {
        self.channel = nil
        self.resolver = resolver
        self.limits = limits
        self.masking = .zeroKey
        self.logger = logger
        self.helloTimeout = helloTimeout
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let link = WebSocketLink(nioChannel: context.channel, writer: rawWriter ?? context, isClient: resolver == nil, masking: masking)
        self.link = link
        if let channel, resolver == nil {
            channel.attachAsClient(link)
        } else {
            let timeout = helloTimeout
            helloTimer = context.eventLoop.scheduleTask(in: .nanoseconds(timeout.nanoseconds)) { [weak link] in
                link?.close(sending: GoAway(code: .protocolError, reason: "no HELLO within \(timeout)"))
            }
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        guard let link else { return }
        switch frame.opcode {
        case .binary, .continuation:
            var payload = Self.payload(of: frame)
            if !frame.fin || fragments != nil {
                var collected = fragments ?? ByteBuffer()
                guard collected.readableBytes + payload.readableBytes <= limits.maxFrameLength * 2 else {
                    return link.close(sending: GoAway(code: .limitExceeded, reason: "fragmented WebSocket message exceeds \(limits.maxFrameLength * 2) bytes"))
                }
                collected.writeBuffer(&payload)
                if !frame.fin {
                    fragments = collected
                    return
                }
                fragments = nil
                payload = collected
            }
            deliver(payload, link: link)
        case .text:
            link.close(sending: GoAway(code: .protocolError, reason: "text WebSocket messages are not part of the protocol"))
        case .ping:
            link.writeControl(opcode: WebSocketFrameHead.opcodePong, payload: Self.payload(of: frame))
        case .pong:
            break
        case .connectionClose:
            link.close(sending: nil)
        default:
            link.close(sending: GoAway(code: .protocolError, reason: "unknown WebSocket opcode"))
        }
    }

    private static func payload(of frame: WebSocketFrame) -> ByteBuffer {
        guard let key = frame.maskKey, key != WebSocketMaskingKey([UInt8](repeating: 0, count: 4)) else { return frame.data }
        return frame.unmaskedData
    }

    private func deliver(_ payload: ByteBuffer, link: WebSocketLink) {
        var payload = payload
        if channel == nil, let resolver {
            switch HelloReader.read(payload, limits: limits) {
            case .needMoreBytes:
                return link.close(sending: GoAway(code: .protocolError, reason: "the first WebSocket message must hold a whole HELLO"))
            case .refused(let goAway):
                logger.warning("refusing connection", metadata: ["reason": "\(goAway.reason)"])
                return link.close(sending: goAway)
            case .hello(let hello, let remainder):
                helloTimer?.cancel()
                let request = SessionRequest(
                    hello: hello, peerCertificate: link.peerCertificate(), remoteAddress: link.nioChannel.remoteAddress, backend: .webSocket)
                let resolved: MessageChannel
                switch resolver(request) {
                case .accept(let accepted): resolved = accepted
                case .refuse(let goAway):
                    logger.warning("refusing session", metadata: ["node": "\(hello.nodeID)", "reason": "\(goAway.reason)"])
                    return link.close(sending: goAway)
                }
                channel = resolved
                link.nioChannel.triggerUserOutboundEvent(HandshakeDeadlineHandler.Established(), promise: nil)
                resolved.attachAsServer(link, hello: hello)
                payload = remainder
            }
        }
        guard let channel, payload.readableBytes > 0 else { return }
        channel.receive(&payload, from: link, wholeFrames: true)
    }

    /// Writes `payload` as one binary WebSocket message, bypassing the channel (tests and tools
    /// use it to send hostile input).
    func testingWriteRaw(_ payload: ByteBuffer) {
        link?.writeControl(opcode: WebSocketFrameHead.opcodeBinary, payload: payload)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable, let link { channel?.linkBecameWritable(link) }
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        helloTimer?.cancel()
        if let link {
            link.close(sending: nil)
            channel?.detach(link)
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        logger.info("WebSocket connection failed", metadata: ["error": "\(error)"])
        let goAway: GoAway? =
            if let wsError = error as? NIOWebSocketError {
                GoAway(code: .limitExceeded, reason: "WebSocket protocol error: \(wsError)")
            } else {
                nil
            }
        if let link { link.close(sending: goAway) } else { context.close(promise: nil) }
    }
}
