import NIOCore
import Testing
@testable import Transport

/// Connection migration: the edge moves to a new UDP port mid-transfer (what a network change
/// or NAT rebinding does) and the session continues without a new handshake or a lost message.
@Suite struct QUICMigrationTests {
    @Test func aClientThatRebindsMidTransferLosesNoMessage() async throws {
        let pair = try await ChannelPair(backend: .quic)
        try await pair.connect()
        let connection = try #require(pair.quicConnection)
        let serverLink = try #require(pair.cloudQUICLink)
        let before = try await pair.onLoop(serverLink) { $0.driver.remote }
        let count = 3000
        let received = Task { try await collect(count, from: pair.cloud, lane: .state, timeout: .seconds(60)) }
        let producer = Task {
            for index in 0..<count {
                try await pair.edge.send(makeMessage(index, size: 500), on: .state, delivery: .reliable)
                if index % 100 == 99 { try await Task.sleep(for: .milliseconds(2)) }
            }
        }
        // Rebind once messages are flowing.
        #expect(await eventually(timeout: .seconds(30)) { pair.cloud.counters.messagesReceived > 300 })
        let newAddress = try await connection.rebind()
        try await producer.value
        #expect(try await received.value.map { index(of: $0) } == Array(0..<count))
        // The server now talks to the new port, over the same session.
        #expect(newAddress.port != before.port)
        #expect(await eventually { (try? await pair.onLoop(serverLink) { $0.driver.remote.port }) == newAddress.port })
        #expect(pair.cloud.counters.handshakes == 1 && pair.edge.counters.handshakes == 1)
        #expect(pair.cloud.isConnected && pair.edge.isConnected)
        await pair.shutdown()
    }
}
