import NIOCore

/// The server side of RFC 6455 framing for the API server's upgraded streams (exec, attach,
/// port forward): client frames must be masked, messages may be fragmented, pings are
/// answered, and every length is checked against ``maxMessageLength`` before it is buffered.
struct WebSocketMessages {
    enum Event: Equatable {
        /// A whole binary (or text) message.
        case message(ByteBuffer, binary: Bool)
        /// The client closed (its close code, if any); answer with a close and end.
        case close(UInt16?)
    }

    enum Failure: Error, CustomStringConvertible {
        case unmasked
        case tooLong(Int, limit: Int)
        case malformed(String)

        var description: String {
            switch self {
            case .unmasked: "a client frame was not masked"
            case .tooLong(let length, let limit): "a message of \(length) bytes is over the limit of \(limit)"
            case .malformed(let reason): reason
            }
        }

        /// The close code for the failure (1002 protocol error, 1009 too big).
        var closeCode: UInt16 {
            if case .tooLong = self { return 1009 }
            return 1002
        }
    }

    let maxMessageLength: Int
    private var buffer = ByteBuffer()
    private var fragments = ByteBuffer()
    private var fragmentedBinary: Bool?

    init(maxMessageLength: Int) { self.maxMessageLength = maxMessageLength }

    /// Adds bytes from the connection; returns the events they complete, and pongs to send.
    mutating func receive(_ bytes: ByteBuffer) throws(Failure) -> (events: [Event], replies: [ByteBuffer]) {
        var bytes = bytes
        buffer.writeBuffer(&bytes)
        var events: [Event] = []
        var replies: [ByteBuffer] = []
        while let frame = try nextFrame() {
            switch frame.opcode {
            case 0x0:
                guard let binary = fragmentedBinary else { throw .malformed("a continuation frame without a message to continue") }
                try append(frame.payload)
                if frame.fin {
                    events.append(.message(fragments, binary: binary))
                    fragments = ByteBuffer()
                    fragmentedBinary = nil
                }
            case 0x1, 0x2:
                guard fragmentedBinary == nil else { throw .malformed("a new message inside a fragmented one") }
                if frame.fin {
                    events.append(.message(frame.payload, binary: frame.opcode == 0x2))
                } else {
                    fragmentedBinary = frame.opcode == 0x2
                    try append(frame.payload)
                }
            case 0x8:
                var payload = frame.payload
                events.append(.close(payload.readInteger(as: UInt16.self)))
                return (events, replies)
            case 0x9:
                replies.append(Self.frame(opcode: 0xA, payload: frame.payload))
            case 0xA:
                break
            default:
                throw .malformed("unknown opcode \(frame.opcode)")
            }
        }
        return (events, replies)
    }

    private mutating func append(_ payload: ByteBuffer) throws(Failure) {
        guard fragments.readableBytes + payload.readableBytes <= maxMessageLength else {
            throw .tooLong(fragments.readableBytes + payload.readableBytes, limit: maxMessageLength)
        }
        var payload = payload
        fragments.writeBuffer(&payload)
    }

    private mutating func nextFrame() throws(Failure) -> (fin: Bool, opcode: UInt8, payload: ByteBuffer)? {
        var peek = buffer
        guard let first = peek.readInteger(as: UInt8.self), let second = peek.readInteger(as: UInt8.self) else { return nil }
        guard first & 0x70 == 0 else { throw .malformed("reserved bits set (no extension was negotiated)") }
        guard second & 0x80 != 0 else { throw .unmasked }
        var length = Int(second & 0x7F)
        if length == 126 {
            guard let value = peek.readInteger(as: UInt16.self) else { return nil }
            length = Int(value)
        } else if length == 127 {
            guard let value = peek.readInteger(as: UInt64.self) else { return nil }
            guard value <= UInt64(maxMessageLength) else { throw .tooLong(Int(clamping: value), limit: maxMessageLength) }
            length = Int(value)
        }
        let opcode = first & 0x0F
        if opcode >= 0x8, length > 125 || first & 0x80 == 0 { throw .malformed("a control frame longer than 125 bytes or fragmented") }
        guard length <= maxMessageLength else { throw .tooLong(length, limit: maxMessageLength) }
        guard let key = peek.readBytes(length: 4), var payload = peek.readSlice(length: length) else { return nil }
        buffer = peek
        if buffer.readableBytes == 0 { buffer.clear() } else if buffer.readerIndex > 64 * 1024 { buffer.discardReadBytes() }
        payload.withUnsafeMutableReadableBytes { bytes in
            for index in bytes.indices { bytes[index] ^= key[index & 3] }
        }
        return (first & 0x80 != 0, opcode, payload)
    }

    /// One unmasked server frame (FIN set).
    static func frame(opcode: UInt8, payload: ByteBuffer) -> ByteBuffer {
        var frame = ByteBuffer()
        let length = payload.readableBytes
        frame.reserveCapacity(length + 10)
        frame.writeInteger(0x80 | opcode)
        if length < 126 {
            frame.writeInteger(UInt8(length))
        } else if length <= Int(UInt16.max) {
            frame.writeInteger(UInt8(126))
            frame.writeInteger(UInt16(length))
        } else {
            frame.writeInteger(UInt8(127))
            frame.writeInteger(UInt64(length))
        }
        var payload = payload
        frame.writeBuffer(&payload)
        return frame
    }

    /// A binary message: `channel` then `data` (Kubernetes' channel protocols).
    static func channelMessage(_ channel: UInt8, _ data: ByteBuffer) -> ByteBuffer {
        var payload = ByteBuffer()
        payload.reserveCapacity(data.readableBytes + 1)
        payload.writeInteger(channel)
        var data = data
        payload.writeBuffer(&data)
        return frame(opcode: 0x2, payload: payload)
    }

    /// A close frame with `code`.
    static func close(_ code: UInt16, reason: String = "") -> ByteBuffer {
        var payload = ByteBuffer()
        payload.writeInteger(code)
        payload.writeString(String(reason.utf8.prefix(120)) ?? "")
        return frame(opcode: 0x8, payload: payload)
    }
}
