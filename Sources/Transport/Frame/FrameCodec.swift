import NIOCore

/// Encodes and decodes frames: `type u8 · lane u8 · length varint · body[length]`.
///
/// Decoding checks the type, the lane and the declared length against ``FrameLimits`` as soon as
/// the frame header is readable, before any body byte is awaited or allocated, and returns
/// message content as a slice of the input.
public enum FrameCodec {
    // MARK: encoding

    /// Appends `frame` to `buffer`.
    public static func encode(_ frame: Frame, into buffer: inout ByteBuffer) {
        switch frame {
        case .message(let body):
            encodeMessage(body, into: &buffer)
        case .hello(let hello):
            writeFrame(.hello, lane: .control, into: &buffer) { body in
                body.writeVarint(hello.version)
                body.writeLengthPrefixedString(hello.nodeID)
                writeID(hello.sessionID, into: &body)
                writeID(hello.peerSessionID, into: &body)
                body.writeVarint(UInt64(hello.resumePoints.count))
                for point in hello.resumePoints {
                    body.writeInteger(point.lane.rawValue)
                    body.writeVarint(point.delivered)
                }
                body.writeVarint(UInt64(hello.capabilities.count))
                for capability in hello.capabilities { body.writeLengthPrefixedString(capability) }
            }
        case .ack(let lane, let sequence):
            writeFrame(.ack, lane: lane, into: &buffer) { $0.writeVarint(sequence) }
        case .credit(let lane, let bytes):
            writeFrame(.credit, lane: lane, into: &buffer) { $0.writeVarint(bytes) }
        case .ping(let value):
            writeFrame(.ping, lane: .control, into: &buffer) { $0.writeInteger(value) }
        case .pong(let value):
            writeFrame(.pong, lane: .control, into: &buffer) { $0.writeInteger(value) }
        case .goAway(let goAway):
            writeFrame(.goAway, lane: .control, into: &buffer) { body in
                body.writeVarint(goAway.code.rawValue)
                body.writeLengthPrefixedString(goAway.reason)
            }
        case .streamOpen(let open):
            writeFrame(.streamOpen, lane: .control, into: &buffer) { body in
                body.writeVarint(open.stream)
                body.writeVarint(open.window)
                body.writeVarint(UInt64(open.header.readableBytes))
                var header = open.header
                body.writeBuffer(&header)
            }
        case .streamData(let stream, let data):
            encodeStreamDataHead(stream: stream, dataLength: data.readableBytes, into: &buffer)
            var data = data
            buffer.writeBuffer(&data)
        case .streamWindow(let stream, let bytes):
            writeFrame(.streamWindow, lane: .control, into: &buffer) { body in
                body.writeVarint(stream)
                body.writeVarint(bytes)
            }
        case .streamFinish(let stream):
            writeFrame(.streamFinish, lane: .control, into: &buffer) { $0.writeVarint(stream) }
        case .streamReset(let reset):
            writeFrame(.streamReset, lane: .control, into: &buffer) { body in
                body.writeVarint(reset.stream)
                body.writeVarint(reset.code.rawValue)
                body.writeLengthPrefixedString(reset.reason)
            }
        }
    }

    /// Appends a STREAM_DATA frame up to (not including) its `dataLength` data bytes, which the
    /// caller writes next (or passes as their own buffer in a gathered write).
    public static func encodeStreamDataHead(stream: UInt64, dataLength: Int, into buffer: inout ByteBuffer) {
        let length = Varint.encodedLength(stream) + dataLength
        buffer.writeInteger(FrameType.streamData.rawValue)
        buffer.writeInteger(Lane.control.rawValue)
        buffer.writeInteger(UInt32(length) | 0x8000_0000)
        buffer.writeVarint(stream)
    }

    /// Appends a MESSAGE frame, content included.
    /// - Returns: the frame's body length.
    @discardableResult
    public static func encodeMessage(_ body: MessageFrame, into buffer: inout ByteBuffer) -> Int {
        let length = encodeMessageHead(body, into: &buffer)
        var content = body.message.content
        buffer.writeBuffer(&content)
        return length
    }

    /// Appends a MESSAGE frame up to (not including) the content bytes, with the frame length
    /// covering the content: the caller writes `body.message.content` next, as its own buffer
    /// in a gathered write, so large payloads are never copied into the frame buffer.
    /// - Returns: the frame's body length (what the frame costs in lane credit).
    @discardableResult
    public static func encodeMessageHead(_ body: MessageFrame, into buffer: inout ByteBuffer) -> Int {
        var stateKeyLength = 0
        if let key = body.delivery.stateKey {
            stateKeyLength = Varint.encodedLength(UInt64(key.utf8.count)) + key.utf8.count
        }
        let bodyHeadLength = Varint.encodedLength(body.sequence) + 1 + stateKeyLength
            + MessageCodec.encodedHeaderLength(of: body.message)
        let length = bodyHeadLength + body.message.content.readableBytes
        // type · lane · 4-byte length varint, so the head's size never depends on the content.
        buffer.writeWire(length: 6 + bodyHeadLength) { writer in
            writer.writeByte(FrameType.message.rawValue)
            writer.writeByte(body.lane.rawValue)
            writer.writeUInt32(UInt32(length) | 0x8000_0000)
            writer.writeVarint(body.sequence)
            writer.writeByte(body.delivery.wireCode)
            if let key = body.delivery.stateKey { writer.writeLengthPrefixedString(key) }
            MessageCodec.encodeHeader(of: body.message, into: &writer)
        }
        return length
    }

    private static func writeFrame(
        _ type: FrameType, lane: Lane, into buffer: inout ByteBuffer, body: (inout ByteBuffer) -> Void
    ) {
        buffer.writeInteger(type.rawValue)
        buffer.writeInteger(lane.rawValue)
        let lengthIndex = buffer.writerIndex
        buffer.writeInteger(UInt32(0))
        let bodyStart = buffer.writerIndex
        body(&buffer)
        buffer.setInteger(UInt32(buffer.writerIndex - bodyStart) | 0x8000_0000, at: lengthIndex)
    }

    private static func writeID(_ id: MessageID, into buffer: inout ByteBuffer) {
        buffer.writeInteger(id.high)
        buffer.writeInteger(id.low)
    }

    // MARK: decoding

    /// Decodes the next frame from `buffer`.
    ///
    /// - Returns: the frame, consuming its bytes; or `nil` when the frame is not complete yet, in
    ///   which case `buffer` is untouched. A frame header that breaks a limit throws at once,
    ///   without waiting for the body.
    public static func decode(from buffer: inout ByteBuffer, limits: FrameLimits) throws(WireError) -> Frame? {
        var peek = buffer
        guard let typeByte = peek.readInteger(as: UInt8.self) else { return nil }
        guard let type = FrameType(rawValue: typeByte) else { throw .unknownFrameType(typeByte) }
        guard let laneByte = peek.readInteger(as: UInt8.self) else { return nil }
        guard Int(laneByte) < limits.laneCount else {
            throw .limitExceeded(field: "frame.lane", value: UInt64(laneByte), limit: limits.laneCount, limitName: "laneCount")
        }
        let length: UInt64
        do {
            length = try peek.readVarint()
        } catch {
            return nil
        }
        guard length <= UInt64(limits.maxFrameLength) else {
            throw .limitExceeded(field: "frame.length", value: length, limit: limits.maxFrameLength, limitName: "maxFrameLength")
        }
        guard var body = peek.readSlice(length: Int(length)) else { return nil }
        buffer = peek
        let lane = Lane(rawValue: laneByte)
        let frame = try decodeBody(type, lane: lane, body: &body, limits: limits)
        if body.readableBytes > 0 {
            throw .trailingBytes(frame: "\(type)", count: body.readableBytes)
        }
        return frame
    }

    private static func decodeBody(
        _ type: FrameType, lane: Lane, body: inout ByteBuffer, limits: FrameLimits
    ) throws(WireError) -> Frame {
        switch type {
        case .message:
            return .message(try decodeMessageBody(lane: lane, body: &body, limits: limits))
        case .hello:
            try requireControlLane(lane, frame: "HELLO")
            let version = try MessageCodec.readVarint(&body, field: "hello.version")
            let nodeID = try MessageCodec.readString(
                &body, field: "hello.nodeID", maxLength: limits.maxNodeIDLength, limitName: "maxNodeIDLength")
            let sessionID = try MessageCodec.readID(&body, field: "hello.sessionID")
            let peerSessionID = try MessageCodec.readID(&body, field: "hello.peerSessionID")
            let pointCount = try MessageCodec.readVarint(&body, field: "hello.resumePointCount")
            guard pointCount <= UInt64(limits.maxResumePoints) else {
                throw .limitExceeded(
                    field: "hello.resumePointCount", value: pointCount, limit: limits.maxResumePoints,
                    limitName: "maxResumePoints")
            }
            var points: [Hello.ResumePoint] = []
            points.reserveCapacity(Int(pointCount))
            for _ in 0..<pointCount {
                let laneByte = try MessageCodec.readByte(&body, field: "hello.resumePoint.lane")
                guard Int(laneByte) < limits.laneCount else {
                    throw .limitExceeded(
                        field: "hello.resumePoint.lane", value: UInt64(laneByte), limit: limits.laneCount, limitName: "laneCount")
                }
                let delivered = try MessageCodec.readVarint(&body, field: "hello.resumePoint.delivered")
                points.append(Hello.ResumePoint(lane: Lane(rawValue: laneByte), delivered: delivered))
            }
            let capabilityCount = try MessageCodec.readVarint(&body, field: "hello.capabilityCount")
            guard capabilityCount <= UInt64(limits.maxCapabilities) else {
                throw .limitExceeded(
                    field: "hello.capabilityCount", value: capabilityCount, limit: limits.maxCapabilities,
                    limitName: "maxCapabilities")
            }
            var capabilities: [String] = []
            for _ in 0..<capabilityCount {
                capabilities.append(try MessageCodec.readString(
                    &body, field: "hello.capability", maxLength: limits.maxCapabilityLength, limitName: "maxCapabilityLength"))
            }
            return .hello(Hello(
                version: version, nodeID: nodeID, sessionID: sessionID, peerSessionID: peerSessionID,
                resumePoints: points, capabilities: capabilities))
        case .ack:
            return .ack(lane: lane, sequence: try MessageCodec.readVarint(&body, field: "ack.sequence"))
        case .credit:
            return .credit(lane: lane, bytes: try MessageCodec.readVarint(&body, field: "credit.bytes"))
        case .ping, .pong:
            try requireControlLane(lane, frame: "\(type)")
            guard let value = body.readInteger(as: UInt64.self) else { throw .truncated(field: "\(type).opaque") }
            return type == .ping ? .ping(value) : .pong(value)
        case .goAway:
            try requireControlLane(lane, frame: "GOAWAY")
            let code = try MessageCodec.readVarint(&body, field: "goAway.code")
            let reason = try MessageCodec.readString(
                &body, field: "goAway.reason", maxLength: limits.maxGoAwayReasonLength, limitName: "maxGoAwayReasonLength")
            return .goAway(GoAway(code: GoAway.Code(rawValue: code), reason: reason))
        case .streamOpen:
            try requireControlLane(lane, frame: "STREAM_OPEN")
            let stream = try readStreamNumber(&body, frame: "streamOpen")
            let window = try MessageCodec.readVarint(&body, field: "streamOpen.window")
            let headerLength = try MessageCodec.readVarint(&body, field: "streamOpen.headerLength")
            guard headerLength <= UInt64(limits.maxStreamOpenLength) else {
                throw .limitExceeded(
                    field: "streamOpen.headerLength", value: headerLength, limit: limits.maxStreamOpenLength,
                    limitName: "maxStreamOpenLength")
            }
            guard let header = body.readSlice(length: Int(headerLength)) else { throw .truncated(field: "streamOpen.header") }
            return .streamOpen(StreamOpen(stream: stream, window: window, header: header))
        case .streamData:
            try requireControlLane(lane, frame: "STREAM_DATA")
            let stream = try readStreamNumber(&body, frame: "streamData")
            return .streamData(stream: stream, data: body.readSlice(length: body.readableBytes)!)
        case .streamWindow:
            try requireControlLane(lane, frame: "STREAM_WINDOW")
            let stream = try readStreamNumber(&body, frame: "streamWindow")
            return .streamWindow(stream: stream, bytes: try MessageCodec.readVarint(&body, field: "streamWindow.bytes"))
        case .streamFinish:
            try requireControlLane(lane, frame: "STREAM_FINISH")
            return .streamFinish(stream: try readStreamNumber(&body, frame: "streamFinish"))
        case .streamReset:
            try requireControlLane(lane, frame: "STREAM_RESET")
            let stream = try readStreamNumber(&body, frame: "streamReset")
            let code = try MessageCodec.readVarint(&body, field: "streamReset.code")
            let reason = try MessageCodec.readString(
                &body, field: "streamReset.reason", maxLength: limits.maxGoAwayReasonLength, limitName: "maxGoAwayReasonLength")
            return .streamReset(StreamReset(stream: stream, code: StreamResetCode(rawValue: code), reason: reason))
        }
    }

    private static func readStreamNumber(_ body: inout ByteBuffer, frame: String) throws(WireError) -> UInt64 {
        let stream = try MessageCodec.readVarint(&body, field: "\(frame).stream")
        guard stream > 0 else { throw .invalidValue(field: "\(frame).stream", reason: "stream numbers start at 1") }
        return stream
    }

    /// Reads a MESSAGE body in one pass over its bytes; the content stays a slice of `body`.
    private static func decodeMessageBody(lane: Lane, body: inout ByteBuffer, limits: FrameLimits) throws(WireError) -> MessageFrame {
        let parsed = body.withUnsafeReadableBytes { bytes -> Result<(UInt64, Delivery, MessageCodec.MessageHead, Int), WireError> in
            var reader = WireReader(bytes)
            do throws(WireError) {
                let sequence = try reader.readVarint(field: "message.sequence")
                let classCode = try reader.readByte(field: "message.deliveryClass")
                let delivery: Delivery
                switch classCode {
                case 0: delivery = .bestEffort
                case 1: delivery = .reliable
                case 2:
                    delivery = .state(key: try reader.readString(
                        field: "message.stateKey", maxLength: limits.maxStateKeyLength, limitName: "maxStateKeyLength"))
                default: throw WireError.unknownDeliveryClass(classCode)
                }
                if delivery.isReliable, sequence == 0 {
                    throw WireError.invalidValue(field: "message.sequence", reason: "reliable messages are numbered from 1")
                }
                if !delivery.isReliable, sequence != 0 {
                    throw WireError.invalidValue(field: "message.sequence", reason: "best-effort messages carry sequence 0")
                }
                let head = try MessageCodec.decodeHead(&reader, limits: limits.message)
                return .success((sequence, delivery, head, reader.offset))
            } catch {
                return .failure(error)
            }
        }
        let (sequence, delivery, head, consumed) = try parsed.get()
        body.moveReaderIndex(forwardBy: consumed)
        let message = Message(header: head.header, router: head.router, content: body.readSlice(length: head.contentLength)!)
        return MessageFrame(lane: lane, sequence: sequence, delivery: delivery, message: message)
    }

    private static func requireControlLane(_ lane: Lane, frame: String) throws(WireError) {
        guard lane == .control else {
            throw .invalidValue(field: "\(frame).lane", reason: "must be the control lane (0), was \(lane.rawValue)")
        }
    }
}
