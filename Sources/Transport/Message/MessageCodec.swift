import NIOCore

/// The compact binary encoding of a ``Message`` (see `docs/protocol.md`, "Message").
///
/// ```
/// flags u8 (bit 0 sync, bit 1 parent present) · id 16 B · [parentID 16 B] · timestamp varint
/// resourceVersion str · type str · source str · destination str · group str · operation str
/// resource str · contentLength varint · content
/// ```
/// Decoding checks every length against ``MessageLimits`` before reading it and returns the
/// content as a slice of the input: no payload byte is copied.
public enum MessageCodec {
    private static let flagSync: UInt8 = 0x01
    private static let flagParent: UInt8 = 0x02
    private static let knownFlags: UInt8 = 0x03

    /// The exact number of bytes ``encode(_:into:)`` writes for `message` without its content,
    /// including the content length prefix.
    public static func encodedHeaderLength(of message: Message) -> Int {
        var length = 1 + 16 + (message.header.parentID == nil ? 0 : 16)
        length += Varint.encodedLength(UInt64(bitPattern: message.header.timestamp) & Varint.maxValue)
        length += stringLength(message.header.resourceVersion) + stringLength(message.header.type)
        length += stringLength(message.router.source) + stringLength(message.router.destination)
        length += stringLength(message.router.group) + stringLength(message.router.operation)
        length += stringLength(message.router.resource)
        return length + Varint.encodedLength(UInt64(message.content.readableBytes))
    }

    private static func stringLength(_ string: String) -> Int {
        let count = string.utf8.count
        return Varint.encodedLength(UInt64(count)) + count
    }

    /// Appends the encoding of `message` to `buffer`, content included.
    public static func encode(_ message: Message, into buffer: inout ByteBuffer) {
        encodeHeader(of: message, into: &buffer)
        var content = message.content
        buffer.writeBuffer(&content)
    }

    /// Appends everything but the content bytes (ending with the content length), so that the
    /// content can follow as a separate buffer in a gathered write.
    public static func encodeHeader(of message: Message, into buffer: inout ByteBuffer) {
        buffer.writeWire(length: encodedHeaderLength(of: message)) { encodeHeader(of: message, into: &$0) }
    }

    /// Writes exactly ``encodedHeaderLength(of:)`` bytes.
    static func encodeHeader(of message: Message, into writer: inout WireWriter) {
        var flags: UInt8 = 0
        if message.header.sync { flags |= flagSync }
        if message.header.parentID != nil { flags |= flagParent }
        writer.writeByte(flags)
        writer.writeUInt64(message.header.id.high)
        writer.writeUInt64(message.header.id.low)
        if let parent = message.header.parentID {
            writer.writeUInt64(parent.high)
            writer.writeUInt64(parent.low)
        }
        writer.writeVarint(UInt64(bitPattern: message.header.timestamp) & Varint.maxValue)
        writer.writeLengthPrefixedString(message.header.resourceVersion)
        writer.writeLengthPrefixedString(message.header.type)
        writer.writeLengthPrefixedString(message.router.source)
        writer.writeLengthPrefixedString(message.router.destination)
        writer.writeLengthPrefixedString(message.router.group)
        writer.writeLengthPrefixedString(message.router.operation)
        writer.writeLengthPrefixedString(message.router.resource)
        writer.writeVarint(UInt64(message.content.readableBytes))
    }

    /// Decodes one message from the readable bytes of `buffer`, consuming exactly its encoding.
    public static func decode(from buffer: inout ByteBuffer, limits: MessageLimits) throws(WireError) -> Message {
        let parsed = buffer.withUnsafeReadableBytes { bytes -> Result<(MessageHead, Int), WireError> in
            var reader = WireReader(bytes)
            do throws(WireError) {
                let head = try decodeHead(&reader, limits: limits)
                return .success((head, reader.offset))
            } catch {
                return .failure(error)
            }
        }
        let (head, consumed) = try parsed.get()
        buffer.moveReaderIndex(forwardBy: consumed)
        return Message(header: head.header, router: head.router, content: buffer.readSlice(length: head.contentLength)!)
    }

    /// Everything of a message but its content bytes.
    struct MessageHead {
        var header: MessageHeader
        var router: MessageRouter
        /// The content length, already checked against the limit and the bytes that remain.
        var contentLength: Int
    }

    /// Reads a message up to its content, which must follow in full in `reader`.
    static func decodeHead(_ reader: inout WireReader, limits: MessageLimits) throws(WireError) -> MessageHead {
        let flags = try reader.readByte(field: "message.flags")
        guard flags & ~knownFlags == 0 else {
            throw .invalidValue(field: "message.flags", reason: "unknown flag bits 0x\(String(flags & ~knownFlags, radix: 16))")
        }
        let id = MessageID(high: try reader.readUInt64(field: "message.id"), low: try reader.readUInt64(field: "message.id"))
        let parentID = flags & flagParent != 0
            ? MessageID(high: try reader.readUInt64(field: "message.parentID"), low: try reader.readUInt64(field: "message.parentID"))
            : nil
        let timestamp = try reader.readVarint(field: "message.timestamp")
        let maxLength = limits.maxStringLength
        let header = MessageHeader(
            id: id, parentID: parentID, timestamp: Int64(timestamp),
            resourceVersion: try reader.readString(field: "message.resourceVersion", maxLength: maxLength, limitName: "maxStringLength"),
            sync: flags & flagSync != 0,
            type: try reader.readString(field: "message.type", maxLength: maxLength, limitName: "maxStringLength"))
        let router = MessageRouter(
            source: try reader.readString(field: "message.source", maxLength: maxLength, limitName: "maxStringLength"),
            destination: try reader.readString(field: "message.destination", maxLength: maxLength, limitName: "maxStringLength"),
            group: try reader.readString(field: "message.group", maxLength: maxLength, limitName: "maxStringLength"),
            operation: try reader.readString(field: "message.operation", maxLength: maxLength, limitName: "maxStringLength"),
            resource: try reader.readString(field: "message.resource", maxLength: maxLength, limitName: "maxStringLength"))
        let contentLength = try reader.readVarint(field: "message.contentLength")
        guard contentLength <= UInt64(limits.maxContentLength) else {
            throw .limitExceeded(
                field: "message.contentLength", value: contentLength, limit: limits.maxContentLength,
                limitName: "maxContentLength")
        }
        guard contentLength <= UInt64(reader.remaining) else { throw .truncated(field: "message.content") }
        return MessageHead(header: header, router: router, contentLength: Int(contentLength))
    }

    // MARK: primitives with field names for errors

    static func readByte(_ buffer: inout ByteBuffer, field: String) throws(WireError) -> UInt8 {
        guard let byte = buffer.readInteger(as: UInt8.self) else { throw .truncated(field: field) }
        return byte
    }

    static func readVarint(_ buffer: inout ByteBuffer, field: String) throws(WireError) -> UInt64 {
        do {
            return try buffer.readVarint()
        } catch {
            throw .truncated(field: field)
        }
    }

    static func readID(_ buffer: inout ByteBuffer, field: String) throws(WireError) -> MessageID {
        guard let high = buffer.readInteger(as: UInt64.self), let low = buffer.readInteger(as: UInt64.self) else {
            throw .truncated(field: field)
        }
        return MessageID(high: high, low: low)
    }

    static func readString(_ buffer: inout ByteBuffer, field: String, limits: MessageLimits) throws(WireError) -> String {
        try readString(&buffer, field: field, maxLength: limits.maxStringLength, limitName: "maxStringLength")
    }

    static func readString(
        _ buffer: inout ByteBuffer, field: String, maxLength: Int, limitName: String
    ) throws(WireError) -> String {
        let length = try readVarint(&buffer, field: field)
        guard length <= UInt64(maxLength) else {
            throw .limitExceeded(field: field, value: length, limit: maxLength, limitName: limitName)
        }
        let count = Int(length)
        if count == 0 { return "" }
        guard buffer.readableBytes >= count else { throw .truncated(field: field) }
        let string: String? = buffer.withUnsafeReadableBytes { bytes in
            String(validating: UnsafeRawBufferPointer(rebasing: bytes[0..<count]), as: UTF8.self)
        }
        guard let string else { throw .invalidUTF8(field: field) }
        buffer.moveReaderIndex(forwardBy: count)
        return string
    }
}
