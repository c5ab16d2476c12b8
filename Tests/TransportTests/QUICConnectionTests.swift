import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Testing
@testable import Transport

/// The ngtcp2 + GnuTLS wrapper over real UDP sockets on 127.0.0.1: mutual-TLS handshakes with
/// the channel's ALPN, stream data both ways, and refusal of a client whose certificate the
/// server does not trust.
@Suite struct QUICConnectionTests {
    /// What the server side saw, written on the event loop and read by the test.
    final class ServerLog: Sendable {
        let received = NIOLockedValueBox(ByteBuffer())
        let accepted = NIOLockedValueBox(0)
        let handshakes = NIOLockedValueBox(0)
        let alpn = NIOLockedValueBox<String?>(nil)
        /// The server's connections (used on the server's event loop only).
        let drivers = NIOLockedValueBox<[QUICConnectionDriver]>([])
    }

    static func startServer(
        _ certificates: TestCertificates, log: ServerLog, echo: Bool, alpn: String = QUICEndpoint.defaultALPN,
        configure: (inout QUICEndpoint.Configuration) -> Void = { _ in }
    ) async throws -> QUICEndpoint {
        var configuration = QUICEndpoint.Configuration(credentials: try QUICCredentials(certificates.server), alpn: alpn)
        configure(&configuration)
        return try await QUICEndpoint.bind(isServer: true, configuration: configuration) { driver in
            log.accepted.withLockedValue { $0 += 1 }
            log.drivers.withLockedValue { $0.append(driver) }
            var echoStream: Int64?
            driver.connection.onHandshakeCompleted = { [unowned driver] in
                log.handshakes.withLockedValue { $0 += 1 }
                log.alpn.withLockedValue { $0 = driver.connection.tls.negotiatedALPN }
            }
            driver.connection.onStreamData = { [unowned driver] _, bytes, _ in
                log.received.withLockedValue { _ = $0.writeBytes(bytes) }
                guard echo else { return }
                if echoStream == nil { echoStream = try? driver.connection.openUniStream() }
                if let echoStream { driver.connection.send(ByteBuffer(bytes: bytes), on: echoStream) }
            }
        }
    }

    @Test func handshakeWithMutualTLSAndStreamDataBothWays() async throws {
        let directory = makeTemporaryDirectory()
        defer { removeTemporaryDirectory(directory) }
        let certificates = try TestCertificates(directory: directory)
        let log = ServerLog()
        let server = try await Self.startServer(certificates, log: log, echo: true)
        let client = try await QUICEndpoint.bind(isServer: false, configuration: .init(credentials: try QUICCredentials(certificates.client)))
        let echoed = NIOLockedValueBox(ByteBuffer())
        let handshake = NIOLockedValueBox(false)
        let driver = try await client.connect(to: server.localAddress) { driver in
            driver.connection.onHandshakeCompleted = { handshake.withLockedValue { $0 = true } }
            driver.connection.onStreamData = { _, bytes, _ in echoed.withLockedValue { _ = $0.writeBytes(bytes) } }
        }
        #expect(await eventually { handshake.withLockedValue { $0 } && log.handshakes.withLockedValue { $0 } == 1 })
        #expect(log.alpn.withLockedValue { $0 } == QUICEndpoint.defaultALPN)

        // 300 KiB in 30 buffers: many packets, flow-control updates and acknowledgements.
        var expected = ByteBuffer()
        try await client.onEventLoop {
            let stream = try driver.connection.openUniStream()
            for chunk in 0..<30 {
                var buffer = ByteBuffer()
                for index in 0..<(10 * 1024) { buffer.writeInteger(UInt8(truncatingIfNeeded: chunk &* 31 &+ index)) }
                driver.connection.send(buffer, on: stream)
            }
            driver.flush()
        }
        for chunk in 0..<30 {
            for index in 0..<(10 * 1024) { expected.writeInteger(UInt8(truncatingIfNeeded: chunk &* 31 &+ index)) }
        }
        #expect(await eventually { echoed.withLockedValue { $0.readableBytes } == expected.readableBytes })
        #expect(log.received.withLockedValue { $0 } == expected)
        #expect(echoed.withLockedValue { $0 } == expected)
        // Everything the client sent was acknowledged, so nothing stays retained.
        #expect(await eventually {
            (try? await client.onEventLoop { driver.connection.unacknowledgedBytes(on: 2) }) == 0
        })
        await client.close()
        await server.close()
    }

    @Test func aClientWithAnUntrustedCertificateIsRefused() async throws {
        let directory = makeTemporaryDirectory()
        defer { removeTemporaryDirectory(directory) }
        let certificates = try TestCertificates(directory: directory)
        let log = ServerLog()
        let server = try await Self.startServer(certificates, log: log, echo: false)
        let client = try await QUICEndpoint.bind(isServer: false, configuration: .init(credentials: try QUICCredentials(certificates.rogueClient)))
        let failure = NIOLockedValueBox<QUICError?>(nil)
        // (The client may finish its side of TLS 1.3 before the server checks its certificate.)
        _ = try await client.connect(to: server.localAddress) { driver in
            driver.onClosed = { error in failure.withLockedValue { $0 = error ?? .closed(reason: "closed") } }
        }
        #expect(await eventually { failure.withLockedValue { $0 } != nil })
        #expect(log.accepted.withLockedValue { $0 } == 1)
        #expect(log.handshakes.withLockedValue { $0 } == 0)
        await client.close()
        await server.close()
    }

    @Test func malformedDatagramsAreDroppedAndTheServerStillAccepts() async throws {
        let directory = makeTemporaryDirectory()
        defer { removeTemporaryDirectory(directory) }
        let certificates = try TestCertificates(directory: directory)
        let log = ServerLog()
        let server = try await Self.startServer(certificates, log: log, echo: false)
        let sender = try await DatagramBootstrap(group: MultiThreadedEventLoopGroup.singleton).bind(host: "127.0.0.1", port: 0).get()
        var garbage: [ByteBuffer] = []
        garbage.append(ByteBuffer(bytes: (0..<200).map { _ in UInt8.random(in: 0 ... 255) } + [0]))  // random (short header to an unknown ID, or invalid)
        garbage.append(ByteBuffer(bytes: [0xC0, 0x00]))  // a long header cut off after one byte of version
        var wrongVersion = ByteBuffer(bytes: [0xC0, 0x0A, 0x0A, 0x0A, 0x0A, 8] + [UInt8](repeating: 1, count: 8) + [0])
        wrongVersion.writeRepeatingByte(0, count: 1200 - wrongVersion.readableBytes)  // an Initial-sized datagram of an unknown version
        garbage.append(wrongVersion)
        var shortInitial = ByteBuffer(bytes: [0xC0, 0x00, 0x00, 0x00, 0x01, 8] + [UInt8](repeating: 2, count: 8) + [0])
        shortInitial.writeRepeatingByte(0, count: 100)  // a v1 Initial below the 1200-byte minimum
        garbage.append(shortInitial)
        for datagram in garbage {
            try await sender.writeAndFlush(AddressedEnvelope(remoteAddress: server.localAddress, data: datagram)).get()
        }
        // The unknown version is answered with Version Negotiation offering v1; the rest are dropped.
        #expect(await eventually { (try? await server.statistics()) == QUICEndpoint.Statistics(dropped: garbage.count - 1, versionNegotiations: 1) })
        #expect(try await server.connectionCount() == 0)
        #expect(log.accepted.withLockedValue { $0 } == 0)
        // A real client still gets through.
        let client = try await QUICEndpoint.bind(isServer: false, configuration: .init(credentials: try QUICCredentials(certificates.client)))
        _ = try await client.connect(to: server.localAddress)
        #expect(await eventually { log.handshakes.withLockedValue { $0 } == 1 })
        try await sender.close()
        await client.close()
        await server.close()
    }
}
