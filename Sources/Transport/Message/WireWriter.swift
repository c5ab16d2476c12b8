import NIOCore

/// Writes wire primitives into memory that was reserved for exactly them, without a capacity or
/// exclusivity check per field: the encoders compute a frame's length first, reserve it once and
/// fill it with this writer.
struct WireWriter {
    private let base: UnsafeMutableRawPointer
    private let capacity: Int
    /// Bytes written so far.
    private(set) var offset = 0

    init(_ bytes: UnsafeMutableRawBufferPointer) {
        base = bytes.baseAddress!
        capacity = bytes.count
    }

    mutating func writeByte(_ value: UInt8) {
        precondition(offset < capacity, "wire writer overrun")
        base.storeBytes(of: value, toByteOffset: offset, as: UInt8.self)
        offset += 1
    }

    mutating func writeUInt64(_ value: UInt64) {
        precondition(offset + 8 <= capacity, "wire writer overrun")
        base.storeBytes(of: value.bigEndian, toByteOffset: offset, as: UInt64.self)
        offset += 8
    }

    mutating func writeUInt32(_ value: UInt32) {
        precondition(offset + 4 <= capacity, "wire writer overrun")
        base.storeBytes(of: value.bigEndian, toByteOffset: offset, as: UInt32.self)
        offset += 4
    }

    /// A QUIC varint (see ``Varint``).
    mutating func writeVarint(_ value: UInt64) {
        precondition(value <= Varint.maxValue, "varint out of range")
        switch value {
        case 0..<64:
            writeByte(UInt8(truncatingIfNeeded: value))
        case 64..<16_384:
            precondition(offset + 2 <= capacity, "wire writer overrun")
            base.storeBytes(of: (UInt16(truncatingIfNeeded: value) | 0x4000).bigEndian, toByteOffset: offset, as: UInt16.self)
            offset += 2
        case 16_384..<1_073_741_824:
            writeUInt32(UInt32(truncatingIfNeeded: value) | 0x8000_0000)
        default:
            writeUInt64(value | 0xC000_0000_0000_0000)
        }
    }

    /// A varint byte count followed by the string's UTF-8 bytes.
    mutating func writeLengthPrefixedString(_ string: String) {
        var string = string
        string.withUTF8 { bytes in
            writeVarint(UInt64(bytes.count))
            writeBytes(UnsafeRawBufferPointer(bytes))
        }
    }

    mutating func writeBytes(_ bytes: UnsafeRawBufferPointer) {
        guard bytes.count > 0 else { return }
        precondition(offset + bytes.count <= capacity, "wire writer overrun")
        (base + offset).copyMemory(from: bytes.baseAddress!, byteCount: bytes.count)
        offset += bytes.count
    }
}

extension ByteBuffer {
    /// Reserves exactly `length` bytes at the writer index, lets `body` fill them through a
    /// ``WireWriter`` and moves the writer index past them.
    mutating func writeWire(length: Int, _ body: (inout WireWriter) -> Void) {
        let written = writeWithUnsafeMutableBytes(minimumWritableBytes: length) { bytes in
            var writer = WireWriter(UnsafeMutableRawBufferPointer(rebasing: bytes[0..<length]))
            body(&writer)
            precondition(writer.offset == length, "encoded length differs from the computed length")
            return length
        }
        assert(written == length)
    }
}
