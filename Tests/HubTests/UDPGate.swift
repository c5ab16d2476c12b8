import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import TestSupport

/// A UDP forwarder in front of a QUIC server that can be shut (every datagram dropped, as a
/// firewall blocking UDP would) and opened again.
final class UDPGate: Sendable {
    private let socket: any Channel
    let port: Int
    private let open: NIOLockedValueBox<Bool>

    init(target: Int, open: Bool) async throws {
        let isOpen = NIOLockedValueBox(open)
        self.open = isOpen
        let targetAddress = try SocketAddress(ipAddress: "127.0.0.1", port: target)
        let clients = NIOLockedValueBox<[Int: (any Channel, SocketAddress)]>([:])
        socket = try await DatagramBootstrap(group: testGroup)
            .channelInitializer { front in
                front.eventLoop.makeCompletedFuture {
                    try front.pipeline.syncOperations.addHandler(GateHandler(target: targetAddress, isOpen: isOpen, clients: clients))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        port = socket.localAddress!.port!
    }

    func setOpen(_ value: Bool) { open.withLockedValue { $0 = value } }

    func close() async { try? await socket.close() }
}

/// Forwards each client's datagrams through its own back socket so replies find the client.
private final class GateHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>
    typealias OutboundOut = AddressedEnvelope<ByteBuffer>
    let target: SocketAddress
    let isOpen: NIOLockedValueBox<Bool>
    let clients: NIOLockedValueBox<[Int: (any Channel, SocketAddress)]>

    init(target: SocketAddress, isOpen: NIOLockedValueBox<Bool>, clients: NIOLockedValueBox<[Int: (any Channel, SocketAddress)]>) {
        self.target = target
        self.isOpen = isOpen
        self.clients = clients
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = unwrapInboundIn(data)
        guard isOpen.withLockedValue({ $0 }) else { return }
        let client = envelope.remoteAddress
        let key = client.port ?? 0
        let front = context.channel
        let target = target
        if let (back, _) = clients.withLockedValue({ $0[key] }) {
            back.writeAndFlush(AddressedEnvelope(remoteAddress: target, data: envelope.data), promise: nil)
            return
        }
        let isOpen = isOpen
        DatagramBootstrap(group: context.eventLoop)
            .channelInitializer { back in
                back.eventLoop.makeCompletedFuture {
                    try back.pipeline.syncOperations.addHandler(ReplyHandler(front: front, client: client, isOpen: isOpen))
                }
            }
            .bind(host: "127.0.0.1", port: 0)
            .whenSuccess { [clients] back in
                clients.withLockedValue { $0[key] = (back, client) }
                back.writeAndFlush(AddressedEnvelope(remoteAddress: target, data: envelope.data), promise: nil)
            }
    }
}

private final class ReplyHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>
    let front: any Channel
    let client: SocketAddress
    let isOpen: NIOLockedValueBox<Bool>

    init(front: any Channel, client: SocketAddress, isOpen: NIOLockedValueBox<Bool>) {
        self.front = front
        self.client = client
        self.isOpen = isOpen
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard isOpen.withLockedValue({ $0 }) else { return }
        front.writeAndFlush(AddressedEnvelope(remoteAddress: client, data: unwrapInboundIn(data).data), promise: nil)
    }
}
