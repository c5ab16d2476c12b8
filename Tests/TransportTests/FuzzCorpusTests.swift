import Foundation
import NIOCore
import Testing
import TestSupport
@testable import Transport

/// Round-trip properties of the wire codecs over generated frames and messages (decode ∘ encode
/// is the identity), and the fuzz targets' seed corpora (`tools/fuzz/corpus`): every committed
/// seed must still be what its target expects, so a codec change cannot leave the fuzzers
/// starting from bytes that no longer decode. `FUZZ_WRITE_SEEDS=1` rewrites the generated seeds.
@Suite struct FuzzCorpusTests {
    static let corpus = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../tools/fuzz/corpus").standardized.path

    @Test func generatedFramesSurviveEncodeThenDecode() throws {
        var random = SplitMix(seed: 0x5EED)
        let limits = FrameLimits()
        for _ in 0..<3000 {
            let frame = random.frame()
            var buffer = ByteBuffer()
            FrameCodec.encode(frame, into: &buffer)
            let decoded = try FrameCodec.decode(from: &buffer, limits: limits)
            #expect(decoded == frame)
            #expect(buffer.readableBytes == 0)
        }
    }

    @Test func generatedMessagesSurviveEncodeThenDecode() throws {
        var random = SplitMix(seed: 0xC0DEC)
        for _ in 0..<3000 {
            let message = random.message()
            var buffer = ByteBuffer()
            MessageCodec.encode(message, into: &buffer)
            let decoded = try MessageCodec.decode(from: &buffer, limits: MessageLimits())
            #expect(decoded == message, "\(decoded.header) \(decoded.router) vs \(message.header) \(message.router)")
        }
    }

    @Test func theSeedCorporaDecodeAsTheirTargetsExpect() throws {
        if ProcessInfo.processInfo.environment["FUZZ_WRITE_SEEDS"] == "1" { try Self.writeSeeds() }
        let frames = try Self.seeds("frame")
        #expect(frames.count >= 8)
        for (name, bytes) in frames {
            var buffer = ByteBuffer(bytes: bytes)
            var decoded = 0
            while let frame = try FrameCodec.decode(from: &buffer, limits: FrameLimits()) {
                var again = ByteBuffer()
                FrameCodec.encode(frame, into: &again)
                #expect(try FrameCodec.decode(from: &again, limits: FrameLimits()) == frame, "\(name)")
                decoded += 1
            }
            #expect(decoded > 0 && buffer.readableBytes == 0, "\(name)")
        }
        let messages = try Self.seeds("message")
        #expect(messages.count >= 4)
        for (name, bytes) in messages {
            var buffer = ByteBuffer(bytes: bytes)
            #expect(throws: Never.self, "\(name)") { _ = try MessageCodec.decode(from: &buffer, limits: MessageLimits()) }
        }
        // WebSocket seeds: an upgrade request on /channel, then frames.
        let webSocket = try Self.seeds("websocket")
        #expect(webSocket.count >= 3)
        for (name, bytes) in webSocket {
            #expect(String(decoding: bytes.prefix(21), as: UTF8.self) == "GET /channel HTTP/1.1", "\(name)")
        }
        for target in ["kube-json", "twin", "bootstrap", "quic"] {
            #expect(try Self.seeds(target).count >= 3, "\(target)")
        }
    }

    static func seeds(_ target: String) throws -> [(String, [UInt8])] {
        let directory = corpus + "/" + target
        return try FileManager.default.contentsOfDirectory(atPath: directory).sorted().map { name in
            (name, Array(try Data(contentsOf: URL(fileURLWithPath: directory + "/" + name))))
        }
    }

    // MARK: writing the generated seeds

    static func writeSeeds() throws {
        func write(_ target: String, _ name: String, _ bytes: [UInt8]) throws {
            try FileManager.default.createDirectory(atPath: corpus + "/" + target, withIntermediateDirectories: true)
            try Data(bytes).write(to: URL(fileURLWithPath: corpus + "/\(target)/\(name)"))
        }
        func encoded(_ frames: [Frame]) -> [UInt8] {
            var buffer = ByteBuffer()
            for frame in frames { FrameCodec.encode(frame, into: &buffer) }
            return Array(buffer.readableBytesView)
        }
        var random = SplitMix(seed: 7)
        let hello = Frame.hello(Hello(nodeID: "edge-1", sessionID: MessageID(high: 1, low: 2), peerSessionID: MessageID(high: 3, low: 4),
                                      resumePoints: [.init(lane: .state, delivered: 42), .init(lane: .events, delivered: 7)], capabilities: ["batch"]))
        let message = Frame.message(MessageFrame(lane: .state, sequence: 1, delivery: .state(key: "default/pod/web"), message: random.message()))
        let samples: [(String, [Frame])] = [
            ("hello", [hello]), ("message-reliable", [.message(MessageFrame(lane: .events, sequence: 3, delivery: .reliable, message: random.message()))]),
            ("message-state", [message]), ("ack", [.ack(lane: .state, sequence: 9)]), ("credit", [.credit(lane: .bulk, bytes: 1 << 20)]),
            ("ping-pong", [.ping(1), .pong(1)]), ("goaway", [.goAway(GoAway(code: .unauthorized, reason: "unknown node"))]),
            ("session", [hello, message, .ack(lane: .state, sequence: 1), .credit(lane: .state, bytes: 65536), .ping(5)]),
        ]
        for (name, frames) in samples { try write("frame", name, encoded(frames)) }
        for index in 0..<4 {
            var buffer = ByteBuffer()
            MessageCodec.encode(random.message(), into: &buffer)
            try write("message", "message-\(index)", Array(buffer.readableBytesView))
        }
        let upgrade = Array("GET /channel HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n".utf8)
        func webSocketFrame(_ opcode: UInt8, _ payload: [UInt8]) -> [UInt8] {
            Array(WebSocketFrameHead.frame(opcode: opcode, payload: ByteBuffer(bytes: payload), maskingKey: (1, 2, 3, 4)).readableBytesView)
        }
        try write("websocket", "upgrade-hello", upgrade + webSocketFrame(0x2, encoded([hello])))
        try write("websocket", "upgrade-hello-message", upgrade + webSocketFrame(0x2, encoded([hello, message, .ping(2)])))
        try write("websocket", "upgrade-text-ping-close", upgrade + webSocketFrame(0x1, Array("hi".utf8)) + webSocketFrame(0x9, [1]) + webSocketFrame(0x8, [3, 232]))
        let key = try PrivateKey.generate()
        let request = try CertificateSigningRequest(commonName: CertificateAuthority.nodeNamePrefix + "edge-1", key: key).export(.der)
        try write("bootstrap", "token-csr", [0x00, 0x0A] + request)
        try write("bootstrap", "bad-token-csr", [0x01] + Array("Bearer abc.def".utf8) + [0x0A] + request)
        try write("bootstrap", "certificate-csr", [0x02] + Array("not a certificate".utf8) + [0x0A] + request)
        try write("bootstrap", "ca", [0x33, 0x0A])
    }
}

/// Generated frames and messages from the seeded generator.
extension SplitMix {
    mutating func string(maxLength: Int, alphabet: [String] = ["a", "z", "0", "/", "-", ".", "é", "節", " "]) -> String {
        (0..<Int.random(in: 0...maxLength, using: &self)).map { _ in alphabet.randomElement(using: &self)! }.joined()
    }

    mutating func messageID() -> MessageID { MessageID(high: next(), low: next()) }

    mutating func message() -> Message {
        let header = MessageHeader(id: messageID(), parentID: Bool.random(using: &self) ? messageID() : nil, timestamp: Int64.random(in: 0...(1 << 62) - 1, using: &self),  // the wire's varint holds 62 bits
                                   resourceVersion: string(maxLength: 12), sync: Bool.random(using: &self), type: string(maxLength: 8))
        let router = MessageRouter(source: string(maxLength: 16), destination: string(maxLength: 16), group: string(maxLength: 8),
                                   operation: string(maxLength: 8), resource: string(maxLength: 40))
        let content = (0..<Int.random(in: 0...300, using: &self)).map { _ in UInt8.random(in: 0...255, using: &self) }
        return Message(header: header, router: router, content: ByteBuffer(bytes: content))
    }

    mutating func lane() -> Lane { Lane.standard.randomElement(using: &self)! }

    /// A value a varint holds (62 bits).
    mutating func varint() -> UInt64 { next() >> 2 }

    mutating func frame() -> Frame {
        switch Int.random(in: 0..<7, using: &self) {
        case 0:
            let lanes = Lane.standard.filter { _ in Bool.random(using: &self) }
            return .hello(Hello(nodeID: "n" + string(maxLength: 30), sessionID: messageID(), peerSessionID: messageID(),
                                resumePoints: lanes.map { .init(lane: $0, delivered: varint()) },
                                capabilities: (0..<Int.random(in: 0...3, using: &self)).map { _ in "c" + string(maxLength: 10) }))
        case 1:
            let delivery: Delivery = [.bestEffort, .reliable, .state(key: "k" + string(maxLength: 30))].randomElement(using: &self)!
            return .message(MessageFrame(lane: lane(), sequence: delivery == .bestEffort ? 0 : varint(), delivery: delivery, message: message()))
        case 2: return .ack(lane: lane(), sequence: varint())
        case 3: return .credit(lane: lane(), bytes: varint())
        case 4: return .ping(varint())
        case 5: return .pong(varint())
        default:
            let codes: [GoAway.Code] = [.normal, .protocolError, .limitExceeded, .unsupportedVersion, .unauthorized, .deadPeer, .replaced, .shuttingDown, .internalError,
                                        .other(1000 + UInt64.random(in: 0...1_000_000, using: &self))]
            return .goAway(GoAway(code: codes.randomElement(using: &self)!, reason: string(maxLength: 40)))
        }
    }
}
