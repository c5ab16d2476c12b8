import Foundation
import NIOCore
import NIOPosix

/// A user-space network impairment proxy on 127.0.0.1, between clients (edges) and one server
/// (the cloud), for UDP (QUIC) or TCP (WebSocket): the kernel here has no netem, so faults are
/// injected in user space. Clients connect to ``port``; the proxy forwards to the target from
/// sockets of its own (per client for UDP, as a NAT would).
///
/// Impairments apply in both directions and can change at any moment (``set(_:)``): loss,
/// duplication and reordering (UDP), delay and jitter, a bandwidth cap, and a blackhole
/// partition (UDP datagrams are dropped; TCP bytes are held and delivered when it lifts, as TCP
/// retransmission would). ``resetConnections()`` breaks every TCP connection with an RST and
/// makes UDP clients appear from a new address. Random choices come from a seeded generator.
public final class ChaosProxy: @unchecked Sendable {
    public enum Kind: Sendable { case udp, tcp }

    /// What happens to traffic; shares are between 0 and 1.
    public struct Impairment: Sendable, Equatable, CustomStringConvertible {
        /// UDP datagrams dropped.
        public var loss: Double
        /// UDP datagrams sent twice.
        public var duplicate: Double
        /// UDP datagrams held back 1–10 ms more, so later ones overtake them.
        public var reorder: Double
        /// Added to every datagram or TCP chunk.
        public var delay: Duration
        /// A further random 0…jitter (TCP keeps its byte order regardless).
        public var jitter: Duration
        /// Bytes per second per direction (per client or connection); nil: no cap.
        public var bandwidth: Int?
        /// Nothing passes (see the type's documentation).
        public var blackhole: Bool

        public init(loss: Double = 0, duplicate: Double = 0, reorder: Double = 0, delay: Duration = .zero, jitter: Duration = .zero,
                    bandwidth: Int? = nil, blackhole: Bool = false) {
            self.loss = loss
            self.duplicate = duplicate
            self.reorder = reorder
            self.delay = delay
            self.jitter = jitter
            self.bandwidth = bandwidth
            self.blackhole = blackhole
        }

        public static let none = Impairment()

        public var description: String {
            var parts: [String] = []
            if loss > 0 { parts.append("loss \(Int(loss * 100))%") }
            if duplicate > 0 { parts.append("duplicate \(Int(duplicate * 100))%") }
            if reorder > 0 { parts.append("reorder \(Int(reorder * 100))%") }
            if delay > .zero || jitter > .zero { parts.append("delay \(delay)+0…\(jitter)") }
            if let bandwidth { parts.append("\(bandwidth) B/s") }
            if blackhole { parts.append("blackhole") }
            return parts.isEmpty ? "none" : parts.joined(separator: ", ")
        }
    }

    /// What the proxy did.
    public struct Counts: Sendable, Equatable {
        /// Datagrams or TCP chunks passed on.
        public var forwarded = 0
        public var bytes = 0
        public var dropped = 0
        public var duplicated = 0
        public var reordered = 0
        /// TCP chunks held by a blackhole (delivered when it lifted).
        public var held = 0
        public var connections = 0
        public var resets = 0
    }

    public let kind: Kind
    private let loop: any EventLoop
    private let target: SocketAddress
    private var listener: (any Channel)!
    // Everything below is touched on `loop` only.
    private var impairment: Impairment
    private var random: SplitMix
    private var counts = Counts()
    private var udpClients: [SocketAddress: UDPClient] = [:]
    private var tcpConnections: [ObjectIdentifier: TCPConnection] = [:]
    /// The time each direction of each flow is busy until (ordering and the bandwidth cap).
    private var busyUntil: [String: NIODeadline] = [:]

    private init(kind: Kind, target: SocketAddress, impairment: Impairment, seed: UInt64, loop: any EventLoop) {
        self.kind = kind
        self.target = target
        self.impairment = impairment
        self.loop = loop
        random = SplitMix(seed: seed)
    }

    /// Starts a proxy in front of `port` on 127.0.0.1.
    public static func start(_ kind: Kind, to port: Int, impairment: Impairment = .none, seed: UInt64 = 0x5EED,
                             group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) async throws -> ChaosProxy {
        let proxy = ChaosProxy(kind: kind, target: try SocketAddress(ipAddress: "127.0.0.1", port: port), impairment: impairment, seed: seed, loop: group.next())
        switch kind {
        case .udp:
            proxy.listener = try await DatagramBootstrap(group: proxy.loop)
                .channelOption(.socketOption(.so_rcvbuf), value: 4 << 20)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(DatagramReader { proxy.fromUDPClient($0) })
                    }
                }
                .bind(host: "127.0.0.1", port: 0).get()
        case .tcp:
            proxy.listener = try await ServerBootstrap(group: proxy.loop)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
                .childChannelInitializer { channel in proxy.accepted(channel) }
                .bind(host: "127.0.0.1", port: 0).get()
        }
        return proxy
    }

    /// The port clients use.
    public var port: Int { listener.localAddress!.port! }

    public var statistics: Counts { (try? loop.submit { self.counts }.wait()) ?? Counts() }

    /// Changes the impairment from now on. Lifting a blackhole delivers the TCP bytes it held.
    public func set(_ impairment: Impairment) async {
        try? await loop.submit {
            let lifted = self.impairment.blackhole && !impairment.blackhole
            self.impairment = impairment
            if lifted { for connection in self.tcpConnections.values { connection.releaseHeld() } }
        }.get()
    }

    /// Breaks every TCP connection with an RST (both sides see a reset), or, for UDP, forgets
    /// every client's mapping, so the server sees each client come from a new port.
    public func resetConnections() async {
        try? await loop.submit {
            for connection in self.tcpConnections.values { connection.reset() }
            self.counts.resets += self.tcpConnections.count + self.udpClients.count
            self.tcpConnections = [:]
            for client in self.udpClients.values { client.back?.close(promise: nil) }
            self.udpClients = [:]
        }.get()
    }

    public func stop() async {
        await resetConnections()
        try? await listener.close()
    }

    // MARK: scheduling

    /// When a chunk of `size` bytes on `flow` arrives at the other side: after the delay and
    /// jitter; for TCP never before the flow's previous chunk; with a bandwidth cap, once the
    /// flow has finished sending what came before and this chunk's own bytes.
    private func departure(flow: String, size: Int, keepOrder: Bool) -> NIODeadline {
        var at = NIODeadline.now() + .nanoseconds(Self.nanoseconds(impairment.delay))
        if impairment.jitter > .zero { at = at + .nanoseconds(Int64(Double(Self.nanoseconds(impairment.jitter)) * random.nextUnit())) }
        let busy = busyUntil[flow] ?? .uptimeNanoseconds(0)
        if let bandwidth = impairment.bandwidth, bandwidth > 0 {
            at = max(at, busy) + .nanoseconds(Int64(size) * 1_000_000_000 / Int64(bandwidth))
        } else if keepOrder {
            at = max(at, busy)
        }
        busyUntil[flow] = max(at, busy)
        return at
    }

    private static func nanoseconds(_ duration: Duration) -> Int64 {
        duration.components.seconds * 1_000_000_000 + duration.components.attoseconds / 1_000_000_000
    }

    private func send(at deadline: NIODeadline, _ body: @escaping () -> Void) {
        if deadline <= .now() {
            body()
        } else {
            loop.assumeIsolatedUnsafeUnchecked().scheduleTask(deadline: deadline) { body() }
        }
    }

    // MARK: UDP

    /// Touched on the proxy's event loop only.
    private final class UDPClient: @unchecked Sendable {
        var back: (any Channel)?
        var waiting: [ByteBuffer] = []
    }

    private func fromUDPClient(_ envelope: AddressedEnvelope<ByteBuffer>) {
        let address = envelope.remoteAddress
        if let client = udpClients[address] {
            if let back = client.back {
                impairDatagram(envelope.data, flow: "\(address)>") { back.writeAndFlush(AddressedEnvelope(remoteAddress: self.target, data: $0), promise: nil) }
            } else {
                client.waiting.append(envelope.data)
            }
            return
        }
        let client = UDPClient()
        client.waiting.append(envelope.data)
        udpClients[address] = client
        counts.connections += 1
        DatagramBootstrap(group: loop)
            .channelOption(.socketOption(.so_rcvbuf), value: 4 << 20)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(DatagramReader { reply in self.fromUDPServer(reply.data, to: address) })
                }
            }
            .bind(host: "127.0.0.1", port: 0)
            .whenSuccess { back in
                guard self.udpClients[address] === client else { return back.close(promise: nil) }
                client.back = back
                for datagram in client.waiting {
                    self.impairDatagram(datagram, flow: "\(address)>") { back.writeAndFlush(AddressedEnvelope(remoteAddress: self.target, data: $0), promise: nil) }
                }
                client.waiting = []
            }
    }

    private func fromUDPServer(_ datagram: ByteBuffer, to client: SocketAddress) {
        impairDatagram(datagram, flow: "\(client)<") { self.listener.writeAndFlush(AddressedEnvelope(remoteAddress: client, data: $0), promise: nil) }
    }

    private func impairDatagram(_ datagram: ByteBuffer, flow: String, forward: @escaping (ByteBuffer) -> Void) {
        if impairment.blackhole || (impairment.loss > 0 && random.nextUnit() < impairment.loss) {
            counts.dropped += 1
            return
        }
        var at = departure(flow: flow, size: datagram.readableBytes, keepOrder: false)
        if impairment.reorder > 0, random.nextUnit() < impairment.reorder {
            at = at + .milliseconds(1 + Int64(random.nextUnit() * 9))
            counts.reordered += 1
        }
        counts.forwarded += 1
        counts.bytes += datagram.readableBytes
        send(at: at) { forward(datagram) }
        if impairment.duplicate > 0, random.nextUnit() < impairment.duplicate {
            counts.duplicated += 1
            send(at: at + .microseconds(500)) { forward(datagram) }
        }
    }

    // MARK: TCP

    /// Touched on the proxy's event loop only.
    private final class TCPConnection: @unchecked Sendable {
        let client: any Channel
        var server: (any Channel)?
        /// Chunks waiting for the server connection, or held by a blackhole, in order.
        var pending: [(toServer: Bool, bytes: ByteBuffer)] = []
        var release: ((Bool, ByteBuffer) -> Void)?

        init(client: any Channel) { self.client = client }

        func releaseHeld() {
            guard server != nil, let release else { return }
            let held = pending
            pending = []
            for (toServer, bytes) in held { release(toServer, bytes) }
        }

        func reset() {
            for channel in [client, server].compactMap({ $0 }) {
                // SO_LINGER with a zero timeout: close sends RST instead of FIN.
                guard let provider = channel as? any SocketOptionProvider else {
                    channel.close(promise: nil)
                    continue
                }
                provider.setSoLinger(linger(l_onoff: 1, l_linger: 0)).whenComplete { _ in channel.close(promise: nil) }
            }
        }
    }

    private func accepted(_ client: any Channel) -> EventLoopFuture<Void> {
        let connection = TCPConnection(client: client)
        let key = ObjectIdentifier(connection)
        tcpConnections[key] = connection
        counts.connections += 1
        let flow = "\(key.hashValue)"
        connection.release = { toServer, bytes in self.deliverTCP(bytes, toServer: toServer, on: connection, flow: flow) }
        client.closeFuture.whenComplete { _ in
            connection.server?.close(promise: nil)
            self.tcpConnections[key] = nil
        }
        ClientBootstrap(group: loop)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { server in
                server.eventLoop.makeCompletedFuture {
                    try server.pipeline.syncOperations.addHandler(StreamReader { bytes in self.fromTCP(bytes, toServer: false, on: connection) })
                }
            }
            .connect(to: target)
            .whenComplete { result in
                switch result {
                case .success(let server):
                    connection.server = server
                    server.closeFuture.whenComplete { _ in client.close(promise: nil) }
                    if !self.impairment.blackhole { connection.releaseHeld() }
                case .failure:
                    client.close(promise: nil)
                }
            }
        return client.eventLoop.makeCompletedFuture {
            try client.pipeline.syncOperations.addHandler(StreamReader { bytes in self.fromTCP(bytes, toServer: true, on: connection) })
        }
    }

    private func fromTCP(_ bytes: ByteBuffer, toServer: Bool, on connection: TCPConnection) {
        if connection.server == nil || impairment.blackhole || !connection.pending.isEmpty {
            if impairment.blackhole { counts.held += 1 }
            connection.pending.append((toServer, bytes))
            return
        }
        connection.release?(toServer, bytes)
    }

    private func deliverTCP(_ bytes: ByteBuffer, toServer: Bool, on connection: TCPConnection, flow: String) {
        guard let server = connection.server else { return }
        let destination = toServer ? server : connection.client
        let at = departure(flow: flow + (toServer ? ">" : "<"), size: bytes.readableBytes, keepOrder: true)
        counts.forwarded += 1
        counts.bytes += bytes.readableBytes
        send(at: at) { destination.writeAndFlush(bytes, promise: nil) }
    }
}

/// Hands every datagram to a closure.
private final class DatagramReader: ChannelInboundHandler {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>
    private let onDatagram: (AddressedEnvelope<ByteBuffer>) -> Void
    init(_ onDatagram: @escaping (AddressedEnvelope<ByteBuffer>) -> Void) { self.onDatagram = onDatagram }
    func channelRead(context: ChannelHandlerContext, data: NIOAny) { onDatagram(unwrapInboundIn(data)) }
}

/// Hands every read of a stream to a closure.
private final class StreamReader: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    private let onBytes: (ByteBuffer) -> Void
    init(_ onBytes: @escaping (ByteBuffer) -> Void) { self.onBytes = onBytes }
    func channelRead(context: ChannelHandlerContext, data: NIOAny) { onBytes(unwrapInboundIn(data)) }
}
