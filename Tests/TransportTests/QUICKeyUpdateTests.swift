import NIOCore
import Testing
@testable import Transport

/// Key update: fresh packet-protection keys mid-session, with no message lost.
@Suite struct QUICKeyUpdateTests {
    @Test func keysUpdateMidTransferAndEveryMessageArrives() async throws {
        let pair = try await ChannelPair(backend: .quic)
        try await pair.connect()
        let connection = try #require(pair.quicConnection)
        let serverLink = try #require(pair.cloudQUICLink)
        let count = 2000
        let received = Task { try await collect(count, from: pair.cloud, lane: .state, timeout: .seconds(60)) }
        for index in 0..<count {
            try await pair.edge.send(makeMessage(index, size: 300), on: .state, delivery: .reliable)
            if index == 500 { try await connection.updateKeys() }
        }
        #expect(try await received.value.map { index(of: $0) } == Array(0..<count))
        // Both sides derived the next key generation.
        #expect(try await connection.statistics().keyUpdates >= 1)
        #expect(try await pair.onLoop(serverLink) { $0.driver.statistics.keyUpdates } >= 1)
        await pair.shutdown()
    }
}
