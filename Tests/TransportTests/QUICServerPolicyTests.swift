import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Testing
@testable import Transport

/// What a QUIC server does before it keeps state for a client: stateless Retry, Version
/// Negotiation, and the connection and handshake limits.
@Suite struct QUICServerPolicyTests {
    /// Sends datagrams from a socket of its own and collects the replies.
    final class RawSender: @unchecked Sendable {
        let channel: any Channel
        let replies = NIOLockedValueBox<[ByteBuffer]>([])

        init() async throws {
            let replies = replies
            channel = try await DatagramBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(Collector(replies)) }
                }
                .bind(host: "127.0.0.1", port: 0).get()
        }

        func send(_ bytes: [UInt8], to address: SocketAddress) async throws {
            try await channel.writeAndFlush(AddressedEnvelope(remoteAddress: address, data: ByteBuffer(bytes: bytes))).get()
        }

        private final class Collector: ChannelInboundHandler, @unchecked Sendable {
            typealias InboundIn = AddressedEnvelope<ByteBuffer>
            let replies: NIOLockedValueBox<[ByteBuffer]>
            init(_ replies: NIOLockedValueBox<[ByteBuffer]>) { self.replies = replies }
            func channelRead(context: ChannelHandlerContext, data: NIOAny) {
                // Keeps the first few (a flood's replies would hold memory the test measures).
                let data = unwrapInboundIn(data).data
                replies.withLockedValue { if $0.count < 16 { $0.append(data) } }
            }
        }
    }

    /// A v1 Initial long header padded to 1200 bytes, with `token` (not encrypted: enough for
    /// the server's stateless checks, which run before any decryption).
    static func initial(version: UInt32 = 1, token: [UInt8] = []) -> [UInt8] {
        var bytes: [UInt8] = [0xC0]
        bytes += withUnsafeBytes(of: version.bigEndian, Array.init)
        bytes += [8] + [UInt8](repeating: 0xD1, count: 8) + [8] + [UInt8](repeating: 0x5C, count: 8)
        if version == 1 {
            bytes += [UInt8(token.count)] + token  // token length < 64: a one-byte varint
            bytes += [0x44, 0x00]  // length 1024 as a two-byte varint
        }
        bytes += [UInt8](repeating: 0, count: max(0, 1200 - bytes.count))
        return bytes
    }

    @Test func aClientIsValidatedWithARetryAndThenCompletesItsHandshake() async throws {
        let directory = makeTemporaryDirectory()
        defer { removeTemporaryDirectory(directory) }
        let certificates = try TestCertificates(directory: directory)
        let log = QUICConnectionTests.ServerLog()
        let server = try await QUICConnectionTests.startServer(certificates, log: log, echo: false)
        let client = try await QUICEndpoint.bind(isServer: false, configuration: .init(credentials: try QUICCredentials(certificates.client)))
        _ = try await client.connect(to: server.localAddress)
        #expect(await eventually { log.handshakes.withLockedValue { $0 } == 1 })
        let statistics = try await server.statistics()
        // One Retry per tokenless Initial: one, or more if the client's Initial was retransmitted
        // before the Retry reached it (a loaded machine).
        #expect(statistics.retries >= 1 && statistics.invalidTokens == 0, "\(statistics)")
        // The first Initial left no state behind: one connection, made from the token's Initial.
        #expect(log.accepted.withLockedValue { $0 } == 1)
        await client.close()
        await server.close()
    }

    @Test func anInitialWithAForgedTokenIsDroppedAndOneWithoutIsAnsweredWithRetry() async throws {
        let directory = makeTemporaryDirectory()
        defer { removeTemporaryDirectory(directory) }
        let certificates = try TestCertificates(directory: directory)
        let log = QUICConnectionTests.ServerLog()
        let server = try await QUICConnectionTests.startServer(certificates, log: log, echo: false)
        let sender = try await RawSender()
        try await sender.send(Self.initial(token: [0xB6] + [UInt8](repeating: 7, count: 40)), to: server.localAddress)
        try await sender.send(Self.initial(), to: server.localAddress)
        #expect(await eventually { (try? await server.statistics().retries) == 1 })
        #expect(try await server.statistics().invalidTokens == 1)
        #expect(log.accepted.withLockedValue { $0 } == 0)
        // The reply is a Retry: long header, type 3.
        #expect(await eventually { sender.replies.withLockedValue { $0.count } == 1 })
        let reply = try #require(sender.replies.withLockedValue { $0.first })
        #expect(reply.getInteger(at: 0, as: UInt8.self).map { $0 & 0xF0 } == 0xF0)
        try await sender.channel.close()
        await server.close()
    }

    @Test func anUnknownVersionIsAnsweredWithVersionNegotiationOfferingV1() async throws {
        let directory = makeTemporaryDirectory()
        defer { removeTemporaryDirectory(directory) }
        let certificates = try TestCertificates(directory: directory)
        let server = try await QUICConnectionTests.startServer(certificates, log: .init(), echo: false)
        let sender = try await RawSender()
        try await sender.send(Self.initial(version: 0x0A1A_2A3A), to: server.localAddress)
        #expect(await eventually { sender.replies.withLockedValue { $0.count } == 1 })
        var reply = try #require(sender.replies.withLockedValue { $0.first })
        // Version 0, our source ID as its destination, and v1 among the versions offered.
        #expect(reply.readInteger(as: UInt8.self).map { $0 & 0x80 } == 0x80)
        #expect(reply.readInteger(as: UInt32.self) == 0)
        #expect(reply.readInteger(as: UInt8.self) == 8)
        #expect(reply.readBytes(length: 8) == [UInt8](repeating: 0x5C, count: 8))
        #expect(reply.readInteger(as: UInt8.self) == 8)
        #expect(reply.readBytes(length: 8) == [UInt8](repeating: 0xD1, count: 8))
        var versions: [UInt32] = []
        while let version = reply.readInteger(as: UInt32.self) { versions.append(version) }
        #expect(versions.contains(1), "offered \(versions)")
        #expect(try await server.statistics().versionNegotiations == 1)
        try await sender.channel.close()
        await server.close()
    }

    @Test(arguments: ["maxHandshakes", "maxConnections"])
    func initialsBeyondALimitAreRefused(limit: String) async throws {
        let directory = makeTemporaryDirectory()
        defer { removeTemporaryDirectory(directory) }
        let certificates = try TestCertificates(directory: directory)
        let log = QUICConnectionTests.ServerLog()
        let server = try await QUICConnectionTests.startServer(certificates, log: log, echo: false) {
            if limit == "maxHandshakes" { $0.maxHandshakes = 0 } else { $0.maxConnections = 1 }
        }
        let credentials = try QUICCredentials(certificates.client)
        let first = try await QUICEndpoint.bind(isServer: false, configuration: .init(credentials: credentials))
        _ = try await first.connect(to: server.localAddress)
        if limit == "maxConnections" {
            #expect(await eventually { log.handshakes.withLockedValue { $0 } == 1 })
        }
        let second = try await QUICEndpoint.bind(isServer: false, configuration: .init(credentials: credentials))
        _ = try await second.connect(to: server.localAddress)
        #expect(await eventually { (try? await server.statistics().refusedByLimit) ?? 0 > 0 })
        try await Task.sleep(for: .milliseconds(300))
        #expect(log.handshakes.withLockedValue { $0 } == (limit == "maxConnections" ? 1 : 0))
        #expect(try await server.connectionCount() == (limit == "maxConnections" ? 1 : 0))
        await first.close()
        await second.close()
        await server.close()
    }
}

/// A flood of garbage and of spoofable Initial packets leaves no state behind.
@Suite struct QUICFloodTests {
    /// Resident memory of this process in bytes (Linux `/proc/self/statm`).
    static func residentBytes() -> Int {
        guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
        let fields = text.split(separator: " ")
        return fields.count > 1 ? (Int(fields[1]) ?? 0) * 4096 : 0
    }

    @Test func aFloodOfMalformedDatagramsAndInitialsLeavesNoState() async throws {
        let directory = makeTemporaryDirectory()
        defer { removeTemporaryDirectory(directory) }
        let certificates = try TestCertificates(directory: directory)
        let log = QUICConnectionTests.ServerLog()
        let server = try await QUICConnectionTests.startServer(certificates, log: log, echo: false)
        let sender = try await QUICServerPolicyTests.RawSender()
        var generator = SplitMix(seed: 42)
        func flood(_ count: Int) async throws {
            for index in 0..<count {
                let bytes: [UInt8]
                switch index % 4 {
                case 0: bytes = (0..<Int(generator.next() % 1400 + 1)).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
                case 1: bytes = Array(QUICServerPolicyTests.initial().prefix(Int(generator.next() % 60)))  // truncated headers
                case 2: bytes = QUICServerPolicyTests.initial()  // would cost a connection without Retry
                default: bytes = QUICServerPolicyTests.initial(version: 0x0A0A_0A0A | UInt32(index & 0xF0F0))
                }
                try await sender.send(bytes, to: server.localAddress)
            }
        }
        // The first round warms allocator arenas and pools; the second must not grow memory.
        try await flood(20_000)
        #expect(await eventually(timeout: .seconds(30)) { (try? await server.statistics().retries) == 5000 })
        let before = Self.residentBytes()
        try await flood(40_000)
        #expect(await eventually(timeout: .seconds(60)) { (try? await server.statistics().retries) == 15_000 })
        let statistics = try await server.statistics()
        let grown = Self.residentBytes() - before
        // No state: no connection, nothing handshaking, nothing waiting to be written.
        #expect(try await server.connectionCount() == 0)
        #expect(try await server.onEventLoop { server.retainedStateCount } == 0)
        #expect(log.accepted.withLockedValue { $0 } == 0)
        // Every unknown-version Initial was answered (random bytes can look like one too).
        #expect(statistics.versionNegotiations >= 15_000, "\(statistics)")
        // 40,000 datagrams: a leak of 1 KiB each would be 40 MB. `make test` runs this suite in
        // a process of its own: beside other suites their allocations grew RSS past the bound.
        #expect(grown < 32 << 20, "resident memory grew by \(grown) bytes")
        // And a real client still gets through.
        let client = try await QUICEndpoint.bind(isServer: false, configuration: .init(credentials: try QUICCredentials(certificates.client)))
        _ = try await client.connect(to: server.localAddress)
        #expect(await eventually { log.handshakes.withLockedValue { $0 } == 1 })
        try await sender.channel.close()
        await client.close()
        await server.close()
    }
}
