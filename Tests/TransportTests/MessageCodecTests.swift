import NIOCore
import Testing
@testable import Transport

@Suite struct MessageCodecTests {
    @Test func roundTripsEveryField() throws {
        var content = ByteBuffer()
        content.writeString("{\"kind\":\"Pod\",\"name\":\"nginx ✓\"}")
        let message = Message(
            header: MessageHeader(id: .next(), parentID: .next(), timestamp: 1_700_000_000_123, resourceVersion: "4711", sync: true, type: "t"),
            router: MessageRouter(source: "edgecontroller", destination: "metaManager", group: "resource", operation: "update", resource: "default/pod/nginx"),
            content: content)
        var buffer = ByteBuffer()
        MessageCodec.encode(message, into: &buffer)
        #expect(buffer.readableBytes == MessageCodec.encodedHeaderLength(of: message) + content.readableBytes)
        let decoded = try MessageCodec.decode(from: &buffer, limits: MessageLimits())
        #expect(decoded == message)
        #expect(buffer.readableBytes == 0)
    }

    @Test func nonASCIIStringsRoundTripAndInvalidUTF8IsFoundAnywhereInALongString() throws {
        let message = Message(
            router: MessageRouter(source: "ü", destination: "édge-名前-noeud-Ωμέγα", group: "user", operation: "publish", resource: "default/pod/nginx-ünïcødé-1234567"),
            content: ByteBuffer())
        var buffer = ByteBuffer()
        MessageCodec.encode(message, into: &buffer)
        #expect(try MessageCodec.decode(from: &buffer, limits: MessageLimits()) == message)
        // A lone continuation byte at every position of a 20-byte string (word and tail paths).
        for position in 0..<20 {
            var bytes = [UInt8](repeating: UInt8(ascii: "a"), count: 20)
            bytes[position] = 0x80
            var bad = ByteBuffer()
            bad.writeInteger(UInt8(0)); bad.writeInteger(UInt64(1)); bad.writeInteger(UInt64(2)); bad.writeVarint(1)
            bad.writeVarint(UInt64(bytes.count)); bad.writeBytes(bytes)
            #expect(throws: WireError.invalidUTF8(field: "message.resourceVersion")) {
                try MessageCodec.decode(from: &bad, limits: MessageLimits())
            }
        }
    }

    @Test func asciiCheckSeesTheHighBitAtEveryPosition() {
        for count in 0..<20 {
            let clean = [UInt8](repeating: 0x7F, count: count)
            #expect(clean.withUnsafeBytes { WireReader.isASCII($0) })
            for position in 0..<count {
                var bytes = clean
                bytes[position] = 0x80
                #expect(!bytes.withUnsafeBytes { WireReader.isASCII($0) }, "high bit at \(position) of \(count)")
            }
        }
    }

    @Test func contentIsASliceOfTheInputNotACopy() throws {
        var buffer = ByteBuffer()
        MessageCodec.encode(makeMessage(7, size: 1000), into: &buffer)
        let decoded = try MessageCodec.decode(from: &buffer, limits: MessageLimits())
        let inputBase = buffer.withUnsafeReadableBytes { UInt(bitPattern: $0.baseAddress) } - UInt(buffer.readerIndex)
        let contentBase = decoded.content.withUnsafeReadableBytes { UInt(bitPattern: $0.baseAddress) }
        #expect(contentBase > inputBase && contentBase < inputBase + UInt(buffer.capacity))
    }

    @Test func everyTruncationIsACleanError() throws {
        var full = ByteBuffer()
        MessageCodec.encode(makeMessage(1, size: 20), into: &full)
        for length in 0..<full.readableBytes {
            var truncated = full.getSlice(at: full.readerIndex, length: length)!
            #expect(throws: WireError.self) { try MessageCodec.decode(from: &truncated, limits: MessageLimits()) }
        }
    }

    @Test func refusesOversizedStringBeforeReadingIt() {
        var buffer = ByteBuffer()
        buffer.writeInteger(UInt8(0))
        buffer.writeInteger(UInt64(1)); buffer.writeInteger(UInt64(2))
        buffer.writeVarint(5)
        buffer.writeVarint(1 << 40)  // resourceVersion claims a terabyte
        #expect(throws: WireError.limitExceeded(field: "message.resourceVersion", value: 1 << 40, limit: 4096, limitName: "maxStringLength")) {
            try MessageCodec.decode(from: &buffer, limits: MessageLimits())
        }
    }

    @Test func refusesOversizedContentAndInvalidUTF8AndUnknownFlags() {
        var big = ByteBuffer()
        MessageCodec.encode(makeMessage(1, size: 2000), into: &big)
        #expect(throws: WireError.self) { try MessageCodec.decode(from: &big, limits: MessageLimits(maxContentLength: 1000)) }

        var badUTF8 = ByteBuffer()
        badUTF8.writeInteger(UInt8(0)); badUTF8.writeInteger(UInt64(1)); badUTF8.writeInteger(UInt64(2)); badUTF8.writeVarint(1)
        badUTF8.writeVarint(2); badUTF8.writeBytes([0xC3, 0x28])
        #expect(throws: WireError.invalidUTF8(field: "message.resourceVersion")) {
            try MessageCodec.decode(from: &badUTF8, limits: MessageLimits())
        }

        var flags = ByteBuffer()
        flags.writeInteger(UInt8(0x80))
        #expect(throws: WireError.self) { try MessageCodec.decode(from: &flags, limits: MessageLimits()) }
    }

    @Test func varintsRoundTripAtEveryBoundary() throws {
        for value: UInt64 in [0, 63, 64, 16_383, 16_384, 1_073_741_823, 1_073_741_824, Varint.maxValue] {
            var buffer = ByteBuffer()
            let written = buffer.writeVarint(value)
            #expect(written == Varint.encodedLength(value))
            #expect(try buffer.readVarint() == value)
        }
        var truncated = ByteBuffer(bytes: [0xC0, 0, 0])
        #expect(throws: PrimitiveReadFailure.truncated) { try truncated.readVarint() }
        #expect(truncated.readerIndex == 0)
    }

    @Test func messageIDsAreUniqueAndPrintAsUUIDs() {
        let ids = (0..<1000).map { _ in MessageID.next() }
        #expect(Set(ids).count == 1000)
        let text = ids[0].description
        #expect(text.count == 36)
        #expect(MessageID(uuidString: text) == ids[0])
        #expect(MessageID(uuidString: "not-a-uuid") == nil)
    }
}
