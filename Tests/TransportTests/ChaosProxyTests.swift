import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Testing
import TestSupport

/// The fault suite's chaos proxy does what it is told: echo servers behind it, clients in front.
@Suite struct ChaosProxyTests {
    @Test func udpLossDuplicationDelayAndBlackholeAreApplied() async throws {
        let echo = try await DatagramBootstrap(group: testGroup)
            .channelInitializer { channel in channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(UDPEcho()) } }
            .bind(host: "127.0.0.1", port: 0).get()
        let proxy = try await ChaosProxy.start(.udp, to: echo.localAddress!.port!, impairment: .init(loss: 0.3))
        let received = NIOLockedValueBox<[String]>([])
        let client = try await DatagramBootstrap(group: testGroup)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(UDPCollector { text in received.withLockedValue { $0.append(text) } })
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        let destination = try SocketAddress(ipAddress: "127.0.0.1", port: proxy.port)
        func send(_ range: Range<Int>, prefix: String) async throws {
            for index in range {
                try await client.writeAndFlush(AddressedEnvelope(remoteAddress: destination, data: ByteBuffer(string: "\(prefix)\(index)")))
                if index % 50 == 0 { try await Task.sleep(for: .milliseconds(5)) }
            }
        }

        // Counted by prefix: under load, datagrams of an earlier step may still arrive.
        func count(_ prefix: String) -> Int { received.withLockedValue { $0.filter { $0.hasPrefix(prefix) }.count } }

        // 30 % loss each way: about half the round trips complete.
        try await send(0..<1000, prefix: "loss-")
        #expect(await eventually(timeout: .seconds(20)) { count("loss-") >= 350 })
        try await Task.sleep(for: .milliseconds(300))
        let lossy = count("loss-")
        #expect((350...650).contains(lossy), "\(lossy) of 1000 came back")
        #expect(proxy.statistics.dropped > 300, "\(proxy.statistics)")

        // Duplication: more come back than were sent.
        await proxy.set(ChaosProxy.Impairment(duplicate: 0.5))
        received.withLockedValue { $0 = [] }
        try await send(0..<200, prefix: "dup-")
        #expect(await eventually(timeout: .seconds(20)) { count("dup-") > 250 }, "\(count("dup-")) of 200 sent")
        #expect(proxy.statistics.duplicated > 50)

        // Delay: a round trip takes at least twice the delay.
        await proxy.set(ChaosProxy.Impairment(delay: .milliseconds(60)))
        received.withLockedValue { $0 = [] }
        let started = ContinuousClock.now
        try await send(0..<1, prefix: "delay-")
        #expect(await eventually(timeout: .seconds(20)) { count("delay-") == 1 })
        #expect(ContinuousClock.now - started >= .milliseconds(120))

        // A blackhole drops everything until it lifts.
        await proxy.set(ChaosProxy.Impairment(blackhole: true))
        received.withLockedValue { $0 = [] }
        try await send(0..<20, prefix: "hole-")
        try await Task.sleep(for: .milliseconds(300))
        #expect(count("hole-") == 0)
        await proxy.set(ChaosProxy.Impairment.none)
        try await send(0..<20, prefix: "healed-")
        #expect(await eventually(timeout: .seconds(20)) { count("healed-") == 20 })
        #expect(count("hole-") == 0)

        await proxy.stop()
        try await client.close()
        try await echo.close()
    }

    @Test func tcpDelayBandwidthBlackholeAndResetAreApplied() async throws {
        let echo = try await ServerBootstrap(group: testGroup)
            .childChannelInitializer { channel in channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(TCPEcho()) } }
            .bind(host: "127.0.0.1", port: 0).get()
        let proxy = try await ChaosProxy.start(.tcp, to: echo.localAddress!.port!)
        let received = NIOLockedValueBox(0)
        let client = try await ClientBootstrap(group: testGroup)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(TCPCounter { count in received.withLockedValue { $0 += count } })
                }
            }
            .connect(host: "127.0.0.1", port: proxy.port).get()
        func roundTrip(_ bytes: Int, timeout: Duration = .seconds(10)) async throws -> Duration {
            let before = received.withLockedValue { $0 }
            let started = ContinuousClock.now
            try await client.writeAndFlush(ByteBuffer(repeating: 0x61, count: bytes))
            #expect(await eventually(timeout: timeout) { received.withLockedValue { $0 } == before + bytes })
            return ContinuousClock.now - started
        }
        _ = try await roundTrip(100)

        await proxy.set(ChaosProxy.Impairment(delay: .milliseconds(50), jitter: .milliseconds(20)))
        #expect(try await roundTrip(100) >= .milliseconds(100))

        // 200 KB/s each way: 100 KB takes at least half a second through both directions.
        await proxy.set(ChaosProxy.Impairment(bandwidth: 200_000))
        #expect(try await roundTrip(100_000) >= .milliseconds(450))

        // A blackhole holds the bytes; they arrive, in order, once it lifts.
        await proxy.set(ChaosProxy.Impairment(blackhole: true))
        let before = received.withLockedValue { $0 }
        try await client.writeAndFlush(ByteBuffer(repeating: 0x62, count: 1000))
        try await Task.sleep(for: .milliseconds(300))
        #expect(received.withLockedValue { $0 } == before)
        await proxy.set(ChaosProxy.Impairment.none)
        #expect(await eventually(timeout: .seconds(5)) { received.withLockedValue { $0 } == before + 1000 })

        // A reset closes the client's connection.
        await proxy.resetConnections()
        #expect(await eventually(timeout: .seconds(5)) { !client.isActive })
        #expect(proxy.statistics.resets == 1 && proxy.statistics.connections == 1)

        await proxy.stop()
        try await echo.close()
    }
}

private final class UDPEcho: ChannelInboundHandler {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>
    typealias OutboundOut = AddressedEnvelope<ByteBuffer>
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        context.writeAndFlush(wrapOutboundOut(unwrapInboundIn(data)), promise: nil)
    }
}

private final class UDPCollector: ChannelInboundHandler {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>
    let onText: @Sendable (String) -> Void
    init(_ onText: @escaping @Sendable (String) -> Void) { self.onText = onText }
    func channelRead(context: ChannelHandlerContext, data: NIOAny) { onText(String(buffer: unwrapInboundIn(data).data)) }
}

private final class TCPEcho: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    func channelRead(context: ChannelHandlerContext, data: NIOAny) { context.writeAndFlush(data, promise: nil) }
}

private final class TCPCounter: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    let onBytes: @Sendable (Int) -> Void
    init(_ onBytes: @escaping @Sendable (Int) -> Void) { self.onBytes = onBytes }
    func channelRead(context: ChannelHandlerContext, data: NIOAny) { onBytes(unwrapInboundIn(data).readableBytes) }
}
