import NIOCore
import NIOHTTP1

/// After a `101 Switching Protocols`, the connection carries raw bytes. The server's
/// connections are `NIOAsyncChannel`s of HTTP parts, so rather than re-wrap the channel, the
/// HTTP codec handlers are taken out and this adapter put in their place: bytes from the
/// client arrive as `.body` parts, and `.body` parts written go out as they are.
final class UpgradedBytesAdapter: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = ByteBuffer

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        context.fireChannelRead(wrapInboundOut(.body(unwrapInboundIn(data))))
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .body(.byteBuffer(let bytes)): context.write(wrapOutboundOut(bytes), promise: promise)
        case .body(.fileRegion): promise?.fail(ChannelError.operationUnsupported)
        case .head, .end: promise?.succeed()
        }
    }
}

/// The names the API server gives its HTTP handlers, so that an upgrade can take them out.
enum HTTPHandlerNames {
    static let encoder = "http-encoder"
    static let decoder = "http-decoder"
    static let pipelining = "http-pipelining"
    static let errors = "http-errors"
    static let adapter = "upgraded-bytes"

    /// The HTTP/1.1 server handlers `configureHTTPServerPipeline` would add, named, with the
    /// decoder handing bytes after an upgrade on rather than dropping them.
    static func configure(_ pipeline: ChannelPipeline.SynchronousOperations) throws {
        try pipeline.addHandler(HTTPResponseEncoder(), name: encoder)
        try pipeline.addHandler(ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .forwardBytes)), name: decoder)
        try pipeline.addHandler(HTTPServerPipelineHandler(), name: pipelining)
        try pipeline.addHandler(HTTPServerProtocolErrorHandler(), name: errors)
    }

    /// Sends `head` (a 101) and, in the same event-loop turn, swaps the HTTP handlers for the
    /// byte adapter.
    static func switchProtocols(on channel: any Channel, sending head: HTTPResponseHead) async throws {
        try await channel.eventLoop.submit {
            let pipeline = channel.pipeline.syncOperations
            try pipeline.addHandler(UpgradedBytesAdapter(), name: adapter, position: .after(try pipeline.context(name: errors).handler))
            let encoderContext = try pipeline.context(name: encoder)
            // Through the encoder (not from the tail, where the adapter now sits).
            try pipeline.context(name: pipelining).write(NIOAny(HTTPServerResponsePart.head(head)), promise: nil)
            try pipeline.context(name: pipelining).writeAndFlush(NIOAny(HTTPServerResponsePart.end(nil)), promise: nil)
            _ = encoderContext
            for name in [errors, pipelining, encoder, decoder] {
                pipeline.removeHandler(context: try pipeline.context(name: name), promise: nil)
            }
        }.get()
    }
}
