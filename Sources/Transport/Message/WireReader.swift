/// Reads wire primitives from a contiguous view of a buffer's readable bytes, checking each
/// against the bytes that remain; errors name the field, as ``WireError`` requires.
struct WireReader {
    private let bytes: UnsafeRawBufferPointer
    /// Bytes consumed so far.
    private(set) var offset = 0

    init(_ bytes: UnsafeRawBufferPointer) {
        self.bytes = bytes
    }

    var remaining: Int { bytes.count - offset }

    mutating func readByte(field: String) throws(WireError) -> UInt8 {
        guard offset < bytes.count else { throw .truncated(field: field) }
        defer { offset += 1 }
        return bytes[offset]
    }

    mutating func readUInt64(field: String) throws(WireError) -> UInt64 {
        guard remaining >= 8 else { throw .truncated(field: field) }
        defer { offset += 8 }
        return UInt64(bigEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
    }

    /// A QUIC varint (see ``Varint``).
    mutating func readVarint(field: String) throws(WireError) -> UInt64 {
        guard offset < bytes.count else { throw .truncated(field: field) }
        let first = bytes[offset]
        let width = 1 << Int(first >> 6)
        guard remaining >= width else { throw .truncated(field: field) }
        var value = UInt64(first & 0x3F)
        for index in 1..<width { value = value << 8 | UInt64(bytes[offset + index]) }
        offset += width
        return value
    }

    /// A varint byte count (at most `maxLength`) followed by that many bytes of valid UTF-8.
    mutating func readString(field: String, maxLength: Int, limitName: String) throws(WireError) -> String {
        let length = try readVarint(field: field)
        guard length <= UInt64(maxLength) else {
            throw .limitExceeded(field: field, value: length, limit: maxLength, limitName: limitName)
        }
        let count = Int(length)
        if count == 0 { return "" }
        guard remaining >= count else { throw .truncated(field: field) }
        let slice = UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + count])
        let string: String?
        if Self.isASCII(slice) {
            // ASCII is valid UTF-8: the decoding initialiser has nothing to repair.
            string = String(decoding: slice, as: UTF8.self)
        } else {
            string = String(validating: slice, as: UTF8.self)
        }
        guard let string else { throw .invalidUTF8(field: field) }
        offset += count
        return string
    }

    /// Whether every byte is below 0x80, eight at a time.
    static func isASCII(_ bytes: UnsafeRawBufferPointer) -> Bool {
        var index = 0
        var combined: UInt64 = 0
        while index + 8 <= bytes.count {
            combined |= bytes.loadUnaligned(fromByteOffset: index, as: UInt64.self)
            index += 8
        }
        while index < bytes.count {
            combined |= UInt64(bytes[index])
            index += 1
        }
        return combined & 0x8080_8080_8080_8080 == 0
    }
}
