import NIOCore
import Testing
@testable import Transport

/// ECN: packets carry the codepoint ngtcp2 chooses and received codepoints reach ngtcp2. On
/// loopback the marks pass, so ngtcp2's path validation succeeds and the peer keeps marking
/// everything it sends; a side that does not mark leaves the other with nothing marked.
@Suite struct QUICECNTests {
    @Test(arguments: [true, false])
    func packetsAreMarkedWhenTheClientUsesECN(clientECN: Bool) async throws {
        let pair = try await ChannelPair(backend: .quic)
        let fixture = try #require(pair.quicFixture)
        var configuration = QUICConnector.Configuration(port: fixture.port, tls: fixture.certificates.client, connectTimeout: .seconds(30))
        configuration.explicitCongestionNotification = clientECN
        let connection = try await QUICConnector(configuration: configuration, group: testGroup).connect(pair.edge)
        try await pair.edge.waitUntilConnected()
        try await pair.cloud.waitUntilConnected()
        let count = 2000
        let received = Task { try await collect(count, from: pair.cloud, lane: .state, timeout: .seconds(60)) }
        for index in 0..<count {
            try await pair.edge.send(makeMessage(index, size: 500), on: .state, delivery: .reliable)
        }
        #expect(try await received.value.count == count)
        let serverLink = try #require(pair.cloudQUICLink)
        let server = try await pair.onLoop(serverLink) { $0.driver.statistics }
        let client = try await connection.statistics()
        if clientECN {
            // ECN validation passed: (nearly) every datagram after the first few is marked.
            #expect(server.ecnMarkedDatagramsReceived > server.datagramsReceived * 9 / 10, "\(server)")
            #expect(client.ecnMarkedDatagramsReceived > client.datagramsReceived * 9 / 10, "\(client)")
        } else {
            // The client neither marks nor reads marks: the server sees none, and the client
            // reports none (ngtcp2 on the server then stops marking too).
            #expect(server.ecnMarkedDatagramsReceived == 0, "\(server)")
            #expect(client.ecnMarkedDatagramsReceived == 0, "\(client)")
        }
        await connection.drop()
        await pair.shutdown()
    }
}
