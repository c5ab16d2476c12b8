import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// A UDP relay on 127.0.0.1 between one client and a server that drops, duplicates and
/// reorders a configurable share of datagrams in both directions, from a seeded generator so a
/// failing run can be repeated. The client talks to ``port``; the relay forwards to the server
/// from a socket of its own and sends replies to the client's latest address (as a NAT would,
/// so a client that rebinds keeps working).
final class LossyUDPRelay: @unchecked Sendable {
    /// What happens to datagrams, each share between 0 and 1.
    struct Impairment: Sendable, CustomStringConvertible {
        var drop: Double = 0
        var duplicate: Double = 0
        /// Datagrams held back 1–4 ms, so later ones overtake them.
        var reorder: Double = 0
        var seed: UInt64 = 0x5eed

        var description: String { "drop \(Int(drop * 100))% duplicate \(Int(duplicate * 100))% reorder \(Int(reorder * 100))% seed \(seed)" }
    }

    /// Counts of what the relay did.
    struct Counts: Sendable {
        var forwarded = 0
        var dropped = 0
        var duplicated = 0
        var reordered = 0
    }

    private let front: any Channel
    private let back: any Channel
    private let server: SocketAddress
    private let state: NIOLockedValueBox<(client: SocketAddress?, counts: Counts, random: SplitMix, impairment: Impairment)>
    /// The client's datagrams since ``recordFirstFlight()`` until the server's first reply.
    private let flight = NIOLockedValueBox<(recording: Bool, datagrams: [ByteBuffer])>((false, []))

    /// The port clients send to.
    var port: Int { front.localAddress!.port! }
    var counts: Counts { state.withLockedValue { $0.counts } }

    /// Changes the impairment from now on (e.g. 0 during set-up, then loss).
    func set(_ impairment: Impairment) { state.withLockedValue { $0.impairment = impairment } }

    private init(front: any Channel, back: any Channel, server: SocketAddress, impairment: Impairment) {
        self.front = front
        self.back = back
        self.server = server
        state = NIOLockedValueBox((nil, Counts(), SplitMix(seed: impairment.seed), impairment))
    }

    /// Starts a relay to `server`.
    static func start(to server: SocketAddress, impairment: Impairment, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) async throws -> LossyUDPRelay {
        let loop = group.next()
        let relayBox = NIOLockedValueBox<LossyUDPRelay?>(nil)
        let front = try await DatagramBootstrap(group: loop)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(Forwarder { envelope in relayBox.withLockedValue { $0 }?.fromClient(envelope) }) }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        let back = try await DatagramBootstrap(group: loop)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(Forwarder { envelope in relayBox.withLockedValue { $0 }?.fromServer(envelope) }) }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        let relay = LossyUDPRelay(front: front, back: back, server: server, impairment: impairment)
        relayBox.withLockedValue { $0 = relay }
        return relay
    }

    func stop() async {
        try? await front.close()
        try? await back.close()
    }

    /// Records the client's next first flight: its datagrams until the server first answers.
    func recordFirstFlight() { flight.withLockedValue { $0 = (true, []) } }

    /// The datagrams recorded by ``recordFirstFlight()``.
    var firstFlight: [ByteBuffer] { flight.withLockedValue { $0.datagrams } }

    private func fromClient(_ envelope: AddressedEnvelope<ByteBuffer>) {
        state.withLockedValue { $0.client = envelope.remoteAddress }
        flight.withLockedValue { if $0.recording { $0.datagrams.append(envelope.data) } }
        forward(envelope.data, to: server, through: back)
    }

    private func fromServer(_ envelope: AddressedEnvelope<ByteBuffer>) {
        flight.withLockedValue { $0.recording = false }
        guard let client = state.withLockedValue({ $0.client }) else { return }
        forward(envelope.data, to: client, through: front)
    }

    private enum Fate { case drop, send(copies: Int, delayed: Bool) }

    private func forward(_ datagram: ByteBuffer, to address: SocketAddress, through channel: any Channel) {
        let fate: Fate = state.withLockedValue { state in
            let impairment = state.impairment
            if state.random.nextUnit() < impairment.drop {
                state.counts.dropped += 1
                return .drop
            }
            let duplicate = state.random.nextUnit() < impairment.duplicate
            let delayed = state.random.nextUnit() < impairment.reorder
            state.counts.forwarded += 1
            if duplicate { state.counts.duplicated += 1 }
            if delayed { state.counts.reordered += 1 }
            return .send(copies: duplicate ? 2 : 1, delayed: delayed)
        }
        guard case .send(let copies, let delayed) = fate else { return }
        let envelope = AddressedEnvelope(remoteAddress: address, data: datagram)
        for _ in 0..<copies {
            if delayed {
                channel.eventLoop.scheduleTask(in: .microseconds(Int64.random(in: 1000...4000))) {
                    channel.writeAndFlush(envelope, promise: nil)
                }
            } else {
                channel.writeAndFlush(envelope, promise: nil)
            }
        }
    }
}

/// Hands every datagram a socket reads to a closure.
private final class Forwarder: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>
    private let onDatagram: (AddressedEnvelope<ByteBuffer>) -> Void

    init(_ onDatagram: @escaping (AddressedEnvelope<ByteBuffer>) -> Void) { self.onDatagram = onDatagram }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        onDatagram(unwrapInboundIn(data))
    }
}
