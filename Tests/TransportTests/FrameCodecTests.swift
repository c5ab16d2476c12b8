import NIOCore
import Testing
@testable import Transport

@Suite struct FrameCodecTests {
    static let samples: [Frame] = [
        .hello(Hello(nodeID: "edge-1", sessionID: MessageID(high: 1, low: 2), peerSessionID: MessageID(high: 3, low: 4),
                     resumePoints: [.init(lane: .state, delivered: 42), .init(lane: .bulk, delivered: 1 << 40)], capabilities: ["batch"])),
        .message(MessageFrame(lane: .events, sequence: 0, delivery: .bestEffort, message: makeMessage(1))),
        .message(MessageFrame(lane: .state, sequence: 9, delivery: .reliable, message: makeMessage(2, size: 5000))),
        .message(MessageFrame(lane: .state, sequence: 10, delivery: .state(key: "default/pod/nginx"), message: makeMessage(3))),
        .ack(lane: .state, sequence: 123_456),
        .credit(lane: .bulk, bytes: 1 << 20),
        .ping(0xDEAD_BEEF), .pong(0xDEAD_BEEF),
        .goAway(GoAway(code: .limitExceeded, reason: "too big")),
        .goAway(GoAway(code: .other(99), reason: "")),
        .streamOpen(StreamOpen(stream: 3, window: 256 << 10, header: ByteBuffer(string: #"{"kind":"log"}"#))),
        .streamData(stream: 3, data: ByteBuffer(repeating: 0x5A, count: 40_000)),
        .streamData(stream: 1 << 40, data: ByteBuffer()),
        .streamWindow(stream: 4, bytes: 1 << 20),
        .streamFinish(stream: 4),
        .streamReset(StreamReset(stream: 5, code: .flowControl, reason: "beyond the window")),
        .streamReset(StreamReset(stream: 6, code: .other(17), reason: "")),
    ]

    @Test func streamFramesBreakingTheirRulesAreRefused() {
        var onDataLane = ByteBuffer(bytes: [FrameType.streamFinish.rawValue, 2, 1, 1])
        #expect(throws: WireError.self) { try FrameCodec.decode(from: &onDataLane, limits: FrameLimits()) }
        var streamZero = ByteBuffer(bytes: [FrameType.streamWindow.rawValue, 0, 2, 0, 5])
        #expect(throws: WireError.invalidValue(field: "streamWindow.stream", reason: "stream numbers start at 1")) {
            try FrameCodec.decode(from: &streamZero, limits: FrameLimits())
        }
        var limits = FrameLimits()
        limits.maxStreamOpenLength = 8
        var longHeader = ByteBuffer()
        FrameCodec.encode(.streamOpen(StreamOpen(stream: 1, window: 1, header: ByteBuffer(string: "0123456789"))), into: &longHeader)
        #expect(throws: WireError.limitExceeded(field: "streamOpen.headerLength", value: 10, limit: 8, limitName: "maxStreamOpenLength")) {
            try FrameCodec.decode(from: &longHeader, limits: limits)
        }
    }

    @Test func everyFrameTypeRoundTrips() throws {
        for frame in Self.samples {
            var buffer = ByteBuffer()
            FrameCodec.encode(frame, into: &buffer)
            let decoded = try FrameCodec.decode(from: &buffer, limits: FrameLimits())
            #expect(decoded == frame)
            #expect(buffer.readableBytes == 0)
        }
    }

    @Test func manyFramesInOneBufferDecodeInOrder() throws {
        var buffer = ByteBuffer()
        for frame in Self.samples { FrameCodec.encode(frame, into: &buffer) }
        var decoded: [Frame] = []
        while let frame = try FrameCodec.decode(from: &buffer, limits: FrameLimits()) { decoded.append(frame) }
        #expect(decoded == Self.samples)
    }

    @Test func incompleteFramesWaitWithoutConsuming() throws {
        for frame in Self.samples {
            var full = ByteBuffer()
            FrameCodec.encode(frame, into: &full)
            for length in 0..<full.readableBytes {
                var partial = full.getSlice(at: 0, length: length)!
                #expect(try FrameCodec.decode(from: &partial, limits: FrameLimits()) == nil)
                #expect(partial.readerIndex == 0)
            }
        }
    }

    @Test func hugeDeclaredLengthFailsBeforeTheBodyArrives() {
        var buffer = ByteBuffer()
        buffer.writeInteger(FrameType.message.rawValue)
        buffer.writeInteger(Lane.bulk.rawValue)
        buffer.writeVarint(1 << 30)  // claims a gigabyte, sends nothing more
        #expect(throws: WireError.limitExceeded(field: "frame.length", value: 1 << 30, limit: FrameLimits().maxFrameLength, limitName: "maxFrameLength")) {
            try FrameCodec.decode(from: &buffer, limits: FrameLimits())
        }
    }

    @Test func unknownTypesLanesClassesAndTrailingBytesAreRefused() {
        var unknownType = ByteBuffer(bytes: [0x7F, 0, 0])
        #expect(throws: WireError.unknownFrameType(0x7F)) { try FrameCodec.decode(from: &unknownType, limits: FrameLimits()) }

        var badLane = ByteBuffer(bytes: [FrameType.ack.rawValue, 200, 1, 0])
        #expect(throws: WireError.self) { try FrameCodec.decode(from: &badLane, limits: FrameLimits()) }

        var badClass = ByteBuffer(bytes: [FrameType.message.rawValue, 1, 2, 1, 9])
        #expect(throws: WireError.unknownDeliveryClass(9)) { try FrameCodec.decode(from: &badClass, limits: FrameLimits()) }

        var trailing = ByteBuffer(bytes: [FrameType.ack.rawValue, 1, 2, 5, 0xFF])
        #expect(throws: WireError.trailingBytes(frame: "ack", count: 1)) { try FrameCodec.decode(from: &trailing, limits: FrameLimits()) }

        var pingOnDataLane = ByteBuffer(bytes: [FrameType.ping.rawValue, 2, 8, 0, 0, 0, 0, 0, 0, 0, 0])
        #expect(throws: WireError.self) { try FrameCodec.decode(from: &pingOnDataLane, limits: FrameLimits()) }

        var reliableWithoutSequence = ByteBuffer()
        FrameCodec.encode(.message(MessageFrame(lane: .state, sequence: 1, delivery: .reliable, message: makeMessage(1))), into: &reliableWithoutSequence)
        reliableWithoutSequence.setInteger(UInt8(0), at: 6)  // sequence varint → 0
        #expect(throws: WireError.self) { try FrameCodec.decode(from: &reliableWithoutSequence, limits: FrameLimits()) }
    }

    @Test func helloCountsAreBoundedBeforeAllocation() {
        var buffer = ByteBuffer()
        FrameCodec.encode(.hello(Hello(nodeID: "n", sessionID: .zero)), into: &buffer)
        // Rewrite the resume-point count (after version, node id and two ids) to 2^40.
        var forged = ByteBuffer()
        forged.writeInteger(FrameType.hello.rawValue); forged.writeInteger(UInt8(0))
        var body = ByteBuffer()
        body.writeVarint(1); body.writeLengthPrefixedString("n")
        body.writeInteger(UInt64(0)); body.writeInteger(UInt64(0)); body.writeInteger(UInt64(0)); body.writeInteger(UInt64(0))
        body.writeVarint(1 << 40)
        forged.writeVarint(UInt64(body.readableBytes)); forged.writeBuffer(&body)
        #expect(throws: WireError.limitExceeded(field: "hello.resumePointCount", value: 1 << 40, limit: 256, limitName: "maxResumePoints")) {
            try FrameCodec.decode(from: &forged, limits: FrameLimits())
        }
    }

    @Test func helloReaderRefusesWrongVersionAndNonHelloFirstFrames() {
        var wrongVersion = ByteBuffer()
        FrameCodec.encode(.hello(Hello(version: 99, nodeID: "n", sessionID: .zero)), into: &wrongVersion)
        guard case .refused(let goAway) = HelloReader.read(wrongVersion, limits: FrameLimits()) else {
            Issue.record("a HELLO of version 99 was accepted"); return
        }
        #expect(goAway.code == .unsupportedVersion)

        var ping = ByteBuffer()
        FrameCodec.encode(.ping(1), into: &ping)
        guard case .refused(let notHello) = HelloReader.read(ping, limits: FrameLimits()) else {
            Issue.record("a PING was accepted as the first frame"); return
        }
        #expect(notHello.code == .protocolError)
    }

    @Test func streamingDecoderHandlesByteAtATimeInput() throws {
        var all = ByteBuffer()
        for frame in Self.samples { FrameCodec.encode(frame, into: &all) }
        var decoder = FrameDecoder(limits: FrameLimits())
        var cumulation = ByteBuffer()
        var decoded: [Frame] = []
        while let byte = all.readInteger(as: UInt8.self) {
            cumulation.writeInteger(byte)
            while let frame = try decoder.decode(buffer: &cumulation) { decoded.append(frame) }
        }
        #expect(decoded == Self.samples)
    }
}
