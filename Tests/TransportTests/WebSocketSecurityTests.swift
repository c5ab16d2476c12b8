import Foundation
import NIOCore
import NIOPosix
import Testing
@testable import Transport

@Suite(.serialized) struct WebSocketSecurityTests {
    @Test func aClientCertificateFromAnotherCAIsRefused() async throws {
        let pair = try await ChannelPair(backend: .webSocket)
        let fixture = try await WebSocketFixture(directory: pair.directory + "/rogue") { pair.cloud }
        await #expect(throws: (any Error).self) { () async throws in
            try await fixture.connector(tls: fixture.certificates.rogueClient).connect(pair.edge)
            try await pair.edge.waitUntilConnected(timeout: .seconds(2))
        }
        #expect(!pair.cloud.isConnected)
        await fixture.stop()
        await pair.shutdown()
    }

    @Test func anUnknownNodeIsRefusedWithGoAway() async throws {
        let pair = try await ChannelPair(backend: .webSocket)
        let fixture = try await WebSocketFixture(directory: pair.directory + "/other") { pair.cloud }
        let stranger = try MessageChannel(configuration: ChannelConfiguration(localNodeID: "edge-99", peerNodeID: "cloud"))
        let connection = try await fixture.connector().connect(stranger)
        await connection.closed()
        #expect(!stranger.isConnected)
        #expect(!pair.cloud.isConnected)
        await fixture.stop()
        await pair.shutdown()
    }

    @Test func aRandomMaskingKeyIsUnmaskedCorrectly() async throws {
        let pair = try await ChannelPair(backend: .local)
        let fixture = try await WebSocketFixture(directory: pair.directory + "/masked") { pair.cloud }
        try await fixture.connect(pair.edge, masking: .randomKey)
        try await pair.edge.waitUntilConnected()
        async let received = collect(200, from: pair.cloud, lane: .bulk)
        for index in 0..<200 { try await pair.edge.send(makeMessage(index, size: 10_000), on: .bulk, delivery: .reliable) }
        #expect(try await received.map { index(of: $0)! } == Array(0..<200))
        await fixture.stop()
        await pair.shutdown()
    }

    /// Sends raw WebSocket messages after a valid HELLO and returns the GOAWAY the server answers.
    private func goAwayAfterSending(_ payload: ByteBuffer) async throws -> GoAway? {
        let pair = try await ChannelPair(backend: .webSocket)
        defer { Task { await pair.shutdown() } }
        let probe = try MessageChannel(configuration: ChannelConfiguration(localNodeID: "edge-1", peerNodeID: "cloud"))
        let connection = try await WebSocketFixtureAccess.connector(pair).connect(probe)
        try await probe.waitUntilConnected()
        // Write the hostile bytes as one WebSocket message from the probe's own link.
        try await connection.nioChannel.eventLoop.submit {
            let handler = try connection.nioChannel.pipeline.syncOperations.handler(type: WebSocketLinkHandler.self)
            handler.testingWriteRaw(payload)
        }.get()
        await connection.closed()
        return probe.lastGoAway
    }

    @Test func anUnknownFrameTypeGetsProtocolErrorGoAway() async throws {
        let goAway = try await goAwayAfterSending(ByteBuffer(bytes: [0x7F, 0, 0]))
        #expect(goAway?.code == .protocolError)
    }

    @Test func aGigabyteLengthClaimGetsLimitExceededGoAway() async throws {
        var frame = ByteBuffer()
        frame.writeInteger(FrameType.message.rawValue)
        frame.writeInteger(Lane.bulk.rawValue)
        frame.writeVarint(1 << 30)
        let goAway = try await goAwayAfterSending(frame)
        #expect(goAway?.code == .limitExceeded)
        #expect(goAway?.reason.contains("maxFrameLength") == true)
    }

    @Test func aTruncatedFrameGetsProtocolErrorGoAway() async throws {
        var frame = ByteBuffer()
        FrameCodec.encode(.ack(lane: .state, sequence: 1), into: &frame)
        frame.moveWriterIndex(to: frame.writerIndex - 1)
        let goAway = try await goAwayAfterSending(frame)
        #expect(goAway?.code == .protocolError)
    }
}

enum WebSocketFixtureAccess {
    static func connector(_ pair: ChannelPair) throws -> WebSocketConnector { try pair.webSocketFixture!.connector() }
}
