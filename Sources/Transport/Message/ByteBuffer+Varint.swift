import NIOCore

/// Variable-length integers as in QUIC (RFC 9000 §16): the two high bits of the first byte give
/// the length (1, 2, 4 or 8 bytes), the remaining bits hold the value in network byte order.
/// Values range over 0 ..< 2⁶².
public enum Varint {
    /// The largest encodable value, 2⁶² − 1.
    public static let maxValue: UInt64 = (1 << 62) - 1

    /// The number of bytes `value` takes on the wire.

    public static func encodedLength(_ value: UInt64) -> Int {
        switch value {
        case 0..<64: return 1
        case 64..<16_384: return 2
        case 16_384..<1_073_741_824: return 4
        default: return 8
        }
    }
}

/// Why a primitive could not be read.
package enum PrimitiveReadFailure: Error, Equatable {
    /// Fewer bytes than the primitive needs.
    case truncated
    /// A string's bytes are not valid UTF-8.
    case invalidUTF8
}

extension ByteBuffer {
    /// Writes `value` as a QUIC varint; returns the number of bytes written.

    @discardableResult
    package mutating func writeVarint(_ value: UInt64) -> Int {
        precondition(value <= Varint.maxValue, "varint out of range")
        switch value {
        case 0..<64:
            return writeInteger(UInt8(truncatingIfNeeded: value))
        case 64..<16_384:
            return writeInteger(UInt16(truncatingIfNeeded: value) | 0x4000)
        case 16_384..<1_073_741_824:
            return writeInteger(UInt32(truncatingIfNeeded: value) | 0x8000_0000)
        default:
            return writeInteger(value | 0xC000_0000_0000_0000)
        }
    }

    /// Reads a QUIC varint, consuming it only when it is complete.

    package mutating func readVarint() throws(PrimitiveReadFailure) -> UInt64 {
        guard let first = getInteger(at: readerIndex, as: UInt8.self) else { throw .truncated }
        switch first >> 6 {
        case 0:
            moveReaderIndex(forwardBy: 1)
            return UInt64(first)
        case 1:
            guard let value = readInteger(as: UInt16.self) else { throw .truncated }
            return UInt64(value & 0x3FFF)
        case 2:
            guard let value = readInteger(as: UInt32.self) else { throw .truncated }
            return UInt64(value & 0x3FFF_FFFF)
        default:
            guard let value = readInteger(as: UInt64.self) else { throw .truncated }
            return value & 0x3FFF_FFFF_FFFF_FFFF
        }
    }

    /// Writes a length-prefixed UTF-8 string.

    @discardableResult
    package mutating func writeLengthPrefixedString(_ string: String) -> Int {
        let length = string.utf8.count
        return writeVarint(UInt64(length)) + writeString(string)
    }
}
