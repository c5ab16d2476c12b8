import NIOCore

/// Writes RFC 6455 frame heads directly in front of a batch (in the headroom the channel
/// reserves), so a batch of channel frames leaves as one WebSocket message without copying.
enum WebSocketFrameHead {
    /// The largest head: 2 bytes, a 64-bit length, a 4-byte masking key.
    static let maxLength = 14

    static let opcodeBinary: UInt8 = 0x2
    static let opcodeClose: UInt8 = 0x8
    static let opcodePong: UInt8 = 0xA

    /// The length of the head for a payload of `payloadLength` bytes.
    static func length(payloadLength: Int, masked: Bool) -> Int {
        let base = payloadLength < 126 ? 2 : (payloadLength <= 0xFFFF ? 4 : 10)
        return base + (masked ? 4 : 0)
    }

    /// Writes a FIN frame head at `index` of `buffer` (which must have room for it).
    static func write(
        opcode: UInt8, payloadLength: Int, maskingKey: (UInt8, UInt8, UInt8, UInt8)?, into buffer: inout ByteBuffer, at index: Int
    ) {
        var offset = index
        offset += buffer.setInteger(0x80 | opcode, at: offset)
        let maskBit: UInt8 = maskingKey == nil ? 0 : 0x80
        if payloadLength < 126 {
            offset += buffer.setInteger(maskBit | UInt8(payloadLength), at: offset)
        } else if payloadLength <= 0xFFFF {
            offset += buffer.setInteger(maskBit | 126, at: offset)
            offset += buffer.setInteger(UInt16(payloadLength), at: offset)
        } else {
            offset += buffer.setInteger(maskBit | 127, at: offset)
            offset += buffer.setInteger(UInt64(payloadLength), at: offset)
        }
        if let key = maskingKey {
            offset += buffer.setBytes([key.0, key.1, key.2, key.3], at: offset)
        }
    }

    /// A complete, unmasked-or-masked control or data frame carrying `payload` (copied: for
    /// small control frames only).
    static func frame(opcode: UInt8, payload: ByteBuffer, maskingKey: (UInt8, UInt8, UInt8, UInt8)?) -> ByteBuffer {
        var payload = payload
        var buffer = ByteBuffer()
        let headLength = length(payloadLength: payload.readableBytes, masked: maskingKey != nil)
        buffer.writeRepeatingByte(0, count: headLength)
        write(opcode: opcode, payloadLength: payload.readableBytes, maskingKey: maskingKey, into: &buffer, at: 0)
        let start = buffer.writerIndex
        buffer.writeBuffer(&payload)
        if let key = maskingKey { mask(&buffer, from: start, key: key) }
        return buffer
    }

    /// XORs the readable bytes of `buffer` from absolute index `start` with `key` (RFC 6455 §5.3).
    static func mask(_ buffer: inout ByteBuffer, from start: Int, key: (UInt8, UInt8, UInt8, UInt8)) {
        let keyBytes = [key.0, key.1, key.2, key.3]
        let offset = start - buffer.readerIndex
        buffer.withUnsafeMutableReadableBytes { bytes in
            for index in offset..<bytes.count { bytes[index] ^= keyBytes[(index - offset) % 4] }
        }
    }
}
