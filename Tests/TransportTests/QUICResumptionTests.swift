import NIOCore
import NIOPosix
import Testing
@testable import Transport

/// Session resumption and 0-RTT: a reconnecting edge resumes its TLS session from the ticket
/// of its previous connection, skips the Retry with the NEW_TOKEN address token, and sends its
/// HELLO in 0-RTT with the first flight. A refused ticket falls back to a full handshake, and a
/// replayed first flight neither gets its early data accepted nor touches the node's session.
@Suite struct QUICResumptionTests {
    @Test func aReconnectResumesAndSendsItsHelloInItsFirstFlight() async throws {
        let pair = try await ChannelPair(backend: .quic)
        let fixture = try #require(pair.quicFixture)
        try await pair.connect()
        let first = try await #require(pair.quicConnection).statistics()
        #expect(!first.sessionResumed)
        #expect(first.earlyData == .none)
        // The ticket and the address token arrive after the handshake.
        try await Task.sleep(for: .milliseconds(200))
        let retriesBefore = try await fixture.server.statistics().retries
        #expect(retriesBefore >= 1)
        await pair.disconnect()

        try await pair.connect()
        let second = try await #require(pair.quicConnection).statistics()
        #expect(second.sessionResumed)
        #expect(second.earlyData == .accepted)
        let server = try await fixture.server.statistics()
        // The HELLO came in 0-RTT, and no Retry was needed: the first flight carried it.
        #expect(server.earlyDataConnections == 1)
        #expect(server.addressTokensAccepted == 1)
        #expect(server.retries == retriesBefore)
        let serverLink = try #require(pair.cloudQUICLink)
        let earlyBytes = try await pair.onLoop(serverLink) { $0.driver.connection.earlyBytesReceived }
        #expect(earlyBytes > 0)
        // The resumed session carries messages both ways.
        try await pair.edge.send(makeMessage(1), on: .state, delivery: .reliable)
        #expect(try await collect(1, from: pair.cloud, lane: .state).map { index(of: $0) } == [1])
        try await pair.cloud.send(makeMessage(2), on: .state, delivery: .reliable)
        #expect(try await collect(1, from: pair.edge, lane: .state).map { index(of: $0) } == [2])
        #expect(pair.cloud.counters.handshakes == 2)
        await pair.shutdown()
    }

    @Test func aTicketFromBeforeAServerRestartFallsBackToAFullHandshake() async throws {
        let pair = try await ChannelPair(backend: .quic)
        let fixture = try #require(pair.quicFixture)
        try await pair.connect()
        try await Task.sleep(for: .milliseconds(200))
        await pair.disconnect()
        // The new server has a new ticket key and token secret.
        try await fixture.restartServer()

        try await pair.connect()
        let statistics = try await #require(pair.quicConnection).statistics()
        #expect(!statistics.sessionResumed)
        #expect(statistics.earlyData == .rejected)
        let server = try await fixture.server.statistics()
        #expect(server.earlyDataConnections == 0)
        // The stale token was refused, and each datagram of the first flight that carried it
        // (the ClientHello with a ticket spans two) was answered with a Retry.
        #expect(server.retries >= 1 && server.invalidTokens == server.retries, "\(server)")
        // The HELLO refused in 0-RTT was sent again: the session works.
        try await pair.edge.send(makeMessage(7), on: .state, delivery: .reliable)
        #expect(try await collect(1, from: pair.cloud, lane: .state).map { index(of: $0) } == [7])
        await pair.shutdown()
    }

    /// GnuTLS's anti-replay record refuses the replayed first flight's early data.
    @Test func aReplayedFirstFlightGetsNoEarlyData() async throws {
        let replay = try await replayFirstFlight(replayProtection: true)
        #expect(replay.earlyDataConnections == 1)
        #expect(replay.handshakesAfter == replay.handshakesBefore)
        #expect(!replay.cloudConnected)
    }

    /// With the anti-replay record out of the way, the replayed HELLO arrives in 0-RTT, yet it
    /// never reaches the node's channel: the handshake, which a replay cannot complete, comes first.
    @Test func aReplayedHelloTakesNoEffectWithoutTheHandshake() async throws {
        let replay = try await replayFirstFlight(replayProtection: false)
        #expect(replay.earlyDataConnections == 2)
        #expect(replay.handshakesAfter == replay.handshakesBefore)
        #expect(!replay.cloudConnected)
    }

    private struct Replay {
        var earlyDataConnections: Int
        var handshakesBefore: Int
        var handshakesAfter: Int
        var cloudConnected: Bool
    }

    /// Records a resumed connection's first flight through a relay, ends that connection, and
    /// sends the flight again from another socket on the same IP address (so the address token
    /// in it still holds).
    private func replayFirstFlight(replayProtection: Bool) async throws -> Replay {
        let pair = try await ChannelPair(backend: .quic)
        let fixture = try #require(pair.quicFixture)
        try await fixture.restartServer(replayProtection: replayProtection)
        let serverAddress = try SocketAddress(ipAddress: "127.0.0.1", port: fixture.port)
        let relay = try await LossyUDPRelay.start(to: serverAddress, impairment: .init())
        try await pair.connect(throughPort: relay.port)
        try await Task.sleep(for: .milliseconds(200))
        await pair.disconnect()
        relay.recordFirstFlight()
        try await pair.connect(throughPort: relay.port)
        #expect(try await fixture.server.statistics().earlyDataConnections == 1)
        let flight = relay.firstFlight
        #expect(!flight.isEmpty)
        await pair.disconnect()
        #expect(await eventually { await fixture.server.connectionCount() == 0 })
        let handshakes = pair.cloud.counters.handshakes

        let attacker = try await DatagramBootstrap(group: testGroup).bind(host: "127.0.0.1", port: 0).get()
        for datagram in flight {
            try await attacker.writeAndFlush(AddressedEnvelope(remoteAddress: serverAddress, data: datagram))
        }
        // The server cannot tell a replay from the first flight alone: it answers.
        #expect(await eventually { await fixture.server.connectionCount() > 0 })
        try await Task.sleep(for: .milliseconds(300))
        let replay = Replay(
            earlyDataConnections: try await fixture.server.statistics().earlyDataConnections, handshakesBefore: handshakes,
            handshakesAfter: pair.cloud.counters.handshakes, cloudConnected: pair.cloud.isConnected)
        try await attacker.close()
        await relay.stop()
        await pair.shutdown()
        return replay
    }
}
