import NIOCore

/// Closes a server connection that has not finished TLS, the upgrade and its HELLO within the
/// hello timeout, and counts connections whose TLS handshake failed. Without it a peer that
/// opens TCP connections and sends nothing holds a descriptor and a `maxConnections` slot for
/// each, for ever. Sits right after the TLS handler; leaves the pipeline once the session is
/// established (``WebSocketLinkHandler`` sends ``Established`` as an outbound user event).
final class HandshakeDeadlineHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny
    typealias InboundOut = NIOAny
    typealias OutboundIn = NIOAny
    typealias OutboundOut = NIOAny

    /// The outbound user event that ends the deadline: the HELLO was accepted.
    struct Established: Sendable {}

    private let timeout: Duration
    private let counters: SharedListenerCounters
    private var timer: Scheduled<Void>?
    private var failed = false

    init(timeout: Duration, counters: SharedListenerCounters) {
        self.timeout = timeout
        self.counters = counters
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let counters = counters
        let channel = context.channel
        timer = context.eventLoop.scheduleTask(in: .nanoseconds(timeout.nanoseconds)) {
            counters.update { $0.handshakeTimeouts += 1 }
            channel.close(promise: nil)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        context.fireChannelRead(data)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if !failed {
            failed = true
            counters.update { $0.failedHandshakes += 1 }
        }
        context.fireErrorCaught(error)
    }

    func channelInactive(context: ChannelHandlerContext) {
        timer?.cancel()
        context.fireChannelInactive()
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        context.write(data, promise: promise)
    }

    func triggerUserOutboundEvent(context: ChannelHandlerContext, event: Any, promise: EventLoopPromise<Void>?) {
        guard event is Established else { return context.triggerUserOutboundEvent(event, promise: promise) }
        timer?.cancel()
        timer = nil
        promise?.succeed()
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }
}
