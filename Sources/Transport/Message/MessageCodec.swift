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
        var flags: UInt8 = 0
        if message.header.sync { flags |= flagSync }
        if message.header.parentID != nil { flags |= flagParent }
        buffer.writeInteger(flags)
        buffer.writeInteger(message.header.id.high)
        buffer.writeInteger(message.header.id.low)
        if let parent = message.header.parentID {
            buffer.writeInteger(parent.high)
            buffer.writeInteger(parent.low)
        }
        buffer.writeVarint(UInt64(bitPattern: message.header.timestamp) & Varint.maxValue)
        buffer.writeLengthPrefixedString(message.header.resourceVersion)
        buffer.writeLengthPrefixedString(message.header.type)
        buffer.writeLengthPrefixedString(message.router.source)
        buffer.writeLengthPrefixedString(message.router.destination)
        buffer.writeLengthPrefixedString(message.router.group)
        buffer.writeLengthPrefixedString(message.router.operation)
        buffer.writeLengthPrefixedString(message.router.resource)
        buffer.writeVarint(UInt64(message.content.readableBytes))
    }

    /// Decodes one message from the readable bytes of `buffer`, consuming exactly its encoding.
    public static func decode(from buffer: inout ByteBuffer, limits: MessageLimits) throws(WireError) -> Message {
        let flags = try readByte(&buffer, field: "message.flags")
        guard flags & ~knownFlags == 0 else {
            throw .invalidValue(field: "message.flags", reason: "unknown flag bits 0x\(String(flags & ~knownFlags, radix: 16))")
        }
        let id = try readID(&buffer, field: "message.id")
        let parentID = flags & flagParent != 0 ? try readID(&buffer, field: "message.parentID") : nil
        let timestamp = try readVarint(&buffer, field: "message.timestamp")
        let header = MessageHeader(
            id: id, parentID: parentID, timestamp: Int64(timestamp),
            resourceVersion: try readString(&buffer, field: "message.resourceVersion", limits: limits),
            sync: flags & flagSync != 0,
            type: try readString(&buffer, field: "message.type", limits: limits))
        let router = MessageRouter(
            source: try readString(&buffer, field: "message.source", limits: limits),
            destination: try readString(&buffer, field: "message.destination", limits: limits),
            group: try readString(&buffer, field: "message.group", limits: limits),
            operation: try readString(&buffer, field: "message.operation", limits: limits),
            resource: try readString(&buffer, field: "message.resource", limits: limits))
        let contentLength = try readVarint(&buffer, field: "message.contentLength")
        guard contentLength <= UInt64(limits.maxContentLength) else {
            throw .limitExceeded(
                field: "message.contentLength", value: contentLength, limit: limits.maxContentLength,
                limitName: "maxContentLength")
        }
        guard let content = buffer.readSlice(length: Int(contentLength)) else {
            throw .truncated(field: "message.content")
        }
        return Message(header: header, router: router, content: content)
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
