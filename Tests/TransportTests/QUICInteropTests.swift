import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Testing
@testable import Transport

/// Our QUIC stack against independent implementations over 127.0.0.1: aioquic (Python, its own
/// QUIC and TLS) as client and as server, and ngtcp2's Debian example client `gtlsclient`.
@Suite(.serialized) struct QUICInteropTests {
    @Test func aioquicClientCompletesAHandshakeAndEchoesDataOnOurServer() async throws {
        let directory = makeTemporaryDirectory()
        defer { removeTemporaryDirectory(directory) }
        let certificates = try TestCertificates(directory: directory)
        let log = QUICConnectionTests.ServerLog()
        let server = try await QUICConnectionTests.startServer(certificates, log: log, echo: true)
        let client = certificates.client
        let peer = try PeerProcess([
            "python3", PeerProcess.script("quic_peer.py"), "client-echo", "--port", "\(server.localAddress.port!)",
            "--ca", client.trustRoots, "--cert", client.certificateChain, "--key", client.privateKey, "--bytes", "300000",
        ])
        defer { peer.stop() }
        let status = await peer.exitStatus(within: .seconds(60))
        #expect(status == 0, "aioquic client: \(peer.output)")
        #expect(peer.output.contains("\"echoed\": 300000"), "\(peer.output)")
        #expect(peer.output.contains("\"alpn\": \"kubeedge-channel/1\""), "\(peer.output)")
        #expect(log.handshakes.withLockedValue { $0 } == 1)
        #expect(log.alpn.withLockedValue { $0 } == QUICEndpoint.defaultALPN)
        await server.close()
    }

    /// With `closeAtOnce` the peer's CONNECTION_CLOSE follows its GOAWAY at once, so both
    /// usually arrive in one read burst: the GOAWAY must still reach the channel.
    @Test(arguments: [false, true])
    func aioquicClientSpeaksTheChannelProtocolOverQUIC(closeAtOnce: Bool) async throws {
        let directory = makeTemporaryDirectory()
        defer { removeTemporaryDirectory(directory) }
        let cloud = try MessageChannel(configuration: ChannelConfiguration(localNodeID: "cloud", peerNodeID: "edge-1"))
        let fixture = try await QUICFixture(directory: directory) { cloud }
        let echo = echoEvents(of: cloud)
        let client = fixture.certificates.client
        let peer = try PeerProcess([
            "python3", PeerProcess.script("quic_peer.py"), "client-exchange", "--port", "\(fixture.port)",
            "--ca", client.trustRoots, "--cert", client.certificateChain, "--key", client.privateKey, "--count", "300",
        ] + (closeAtOnce ? ["--close-at-once"] : []))
        defer { peer.stop() }
        let status = await peer.exitStatus(within: .seconds(60))
        echo.cancel()
        #expect(status == 0, "aioquic channel peer: \(peer.output)")
        #expect(peer.output.contains("\"sent\": 300, \"received\": 300, \"acked\": 300"), "\(peer.output)")
        #expect(cloud.counters.handshakes == 1)
        #expect(cloud.counters.protocolErrors == 0)
        // The peer's GOAWAY (normal) reached the channel.
        #expect(await eventually { cloud.lastGoAway?.code == .normal })
        await cloud.close()
        await fixture.stop()
    }

    @Test func ourClientCompletesAHandshakeAndEchoesDataOnAnAioquicServer() async throws {
        let directory = makeTemporaryDirectory()
        defer { removeTemporaryDirectory(directory) }
        let certificates = try TestCertificates(directory: directory)
        let server = certificates.server
        let peer = try PeerProcess([
            "python3", PeerProcess.script("quic_peer.py"), "server-echo", "--cert", server.certificateChain, "--key", server.privateKey,
        ])
        defer { peer.stop() }
        #expect(await eventually(timeout: .seconds(30)) { peer.output.contains("LISTENING ") }, "\(peer.output)")
        let portText = peer.output.split(separator: "\n").first { $0.hasPrefix("LISTENING ") }?.dropFirst("LISTENING ".count)
        let port = try #require(portText.flatMap { Int($0) }, "\(peer.output)")

        let client = try await QUICEndpoint.bind(isServer: false, configuration: .init(credentials: try QUICCredentials(certificates.client)))
        let echoed = NIOLockedValueBox(ByteBuffer())
        let handshake = NIOLockedValueBox(false)
        let driver = try await client.connect(to: try SocketAddress(ipAddress: "127.0.0.1", port: port)) { driver in
            driver.connection.onHandshakeCompleted = { handshake.withLockedValue { $0 = true } }
            driver.connection.onStreamData = { _, bytes, _ in echoed.withLockedValue { _ = $0.writeBytes(bytes) } }
        }
        #expect(await eventually { handshake.withLockedValue { $0 } }, "\(peer.output)")
        var payload = ByteBuffer()
        for index in 0..<200_000 { payload.writeInteger(UInt8(truncatingIfNeeded: index &* 13)) }
        let sent = payload
        try await client.onEventLoop {
            let stream = try driver.connection.openUniStream()
            driver.connection.send(sent, on: stream)
            driver.flush()
        }
        #expect(await eventually { echoed.withLockedValue { $0.readableBytes } >= sent.readableBytes })
        #expect(echoed.withLockedValue { $0 } == sent)
        #expect(try await client.onEventLoop { driver.connection.tls.negotiatedALPN } == QUICEndpoint.defaultALPN)
        // The aioquic server asked for our certificate (its test hook), so TLS was mutual.
        #expect(try await client.onEventLoop { driver.connection.tls.certificateWasRequested })
        #expect(peer.output.contains("HANDSHAKE alpn=kubeedge-channel/1"), "\(peer.output)")
        await client.close()
    }

    @Test func ngtcp2ExampleClientCompletesAHandshakeWithOurServer() async throws {
        let directory = makeTemporaryDirectory()
        defer { removeTemporaryDirectory(directory) }
        let certificates = try TestCertificates(directory: directory)
        let log = QUICConnectionTests.ServerLog()
        // gtlsclient speaks HTTP/3: this server offers its ALPN, "h3", and requires its certificate.
        let server = try await QUICConnectionTests.startServer(certificates, log: log, echo: false, alpn: "h3")
        let client = certificates.client
        let peer = try PeerProcess([
            "gtlsclient", "--cert", client.certificateChain, "--key", client.privateKey, "--timeout=5s", "--exit-on-all-streams-close",
            "--key-update=200ms",
            "127.0.0.1", "\(server.localAddress.port!)", "https://localhost/",
        ])
        defer { peer.stop() }
        #expect(await eventually(timeout: .seconds(20)) { log.handshakes.withLockedValue { $0 } == 1 }, "\(peer.output)")
        #expect(log.alpn.withLockedValue { $0 } == "h3")
        // After the handshake the client opens its HTTP/3 streams: 1-RTT data reached us.
        #expect(await eventually { log.received.withLockedValue { $0.readableBytes } > 0 }, "\(peer.output)")
        #expect(await eventually { peer.output.contains("QUIC handshake has completed") }, "\(peer.output)")
        // gtlsclient updates its keys 200 ms after the handshake; our server follows once a
        // packet under the new keys arrives, which data from us makes the client send (its ACK).
        try await Task.sleep(for: .milliseconds(400))
        let updated = await eventually {
            (try? await server.onEventLoop {
                guard let driver = log.drivers.withLockedValue({ $0.first }), !driver.closed else { return -1 }
                if let stream = try? driver.connection.openUniStream() { driver.connection.send(ByteBuffer(string: "ping"), on: stream) }
                driver.flush()
                return driver.connection.keyUpdates
            }) ?? -1 >= 1
        }
        #expect(updated, "\(peer.output)")
        await server.close()
    }

    /// Breaches of the QUIC binding by the independent peer, and the GOAWAY code each must get.
    static let refusals: [(breach: String, code: GoAway.Code)] = [
        ("credit", .protocolError), ("early-message", .protocolError), ("oversize", .limitExceeded), ("stream-end", .protocolError),
    ]

    @Test(arguments: refusals.map(\.breach))
    func aPeerBreakingTheQUICBindingIsClosedWithTheRightCode(breach: String) async throws {
        let expected = Self.refusals.first { $0.breach == breach }!.code
        let directory = makeTemporaryDirectory()
        defer { removeTemporaryDirectory(directory) }
        let cloud = try MessageChannel(configuration: ChannelConfiguration(localNodeID: "cloud", peerNodeID: "edge-1"))
        let fixture = try await QUICFixture(directory: directory) { cloud }
        let client = fixture.certificates.client
        let peer = try PeerProcess([
            "python3", PeerProcess.script("quic_peer.py"), "client-refused", "--case", breach, "--port", "\(fixture.port)",
            "--ca", client.trustRoots, "--cert", client.certificateChain, "--key", client.privateKey, "--timeout", "10",
        ])
        defer { peer.stop() }
        let status = await peer.exitStatus(within: .seconds(60))
        #expect(status == 0, "aioquic peer: \(peer.output)")
        // The CONNECTION_CLOSE carries the GOAWAY code; the GOAWAY frame, when it arrived, agrees.
        #expect(peer.output.contains("\"close\": \(expected.rawValue)"), "\(peer.output)")
        #expect(peer.output.contains("\"goaway\": \(expected.rawValue)") || peer.output.contains("\"goaway\": null"), "\(peer.output)")
        await cloud.close()
        await fixture.stop()
    }
}
