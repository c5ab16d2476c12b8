import NIOCore

/// Splits a channel batch (whole frames, possibly with a frame's content in a buffer of its
/// own) into runs per QUIC stream: MESSAGE frames go to their lane's stream, every other frame
/// (HELLO, ACK, CREDIT, PING, PONG, GOAWAY) to the control stream. Runs are slices of the
/// batch's buffers, so no byte is copied.
struct LaneBatchSplitter {
    /// The lane whose stream carries a frame's bytes.
    private var currentLane = Lane.control
    /// Bytes of the current frame still to come (in this part or the next ones).
    private var remaining = 0

    /// Calls `emit` with consecutive runs of `parts`, each with the lane whose stream it belongs on.
    /// Consecutive frames of one lane in one buffer form one run.
    mutating func split(_ parts: [ByteBuffer], emit: (Lane, ByteBuffer) -> Void) {
        for part in parts {
            var runStart = part.readerIndex
            var runLane: Lane?
            var index = part.readerIndex
            let end = part.writerIndex
            while index < end {
                if remaining == 0 {
                    let lane = Self.streamLane(ofFrameAt: index, in: part, remaining: &remaining)
                    if let runLane, runLane != lane {
                        emit(runLane, part.getSlice(at: runStart, length: index - runStart)!)
                        runStart = index
                    }
                    runLane = lane
                    currentLane = lane
                } else if runLane == nil {
                    runLane = currentLane
                }
                let take = min(remaining, end - index)
                index += take
                remaining -= take
            }
            if let runLane, index > runStart {
                emit(runLane, part.getSlice(at: runStart, length: index - runStart)!)
            }
        }
    }

    /// Reads the head of the frame at `index`: its stream's lane, and its whole length into `remaining`.
    private static func streamLane(ofFrameAt index: Int, in buffer: ByteBuffer, remaining: inout Int) -> Lane {
        // The channel writes every frame head (type, lane, length) into one buffer.
        guard let type = buffer.getInteger(at: index, as: UInt8.self),
              let lane = buffer.getInteger(at: index + 1, as: UInt8.self),
              let first = buffer.getInteger(at: index + 2, as: UInt8.self)
        else { preconditionFailure("a batch buffer ends inside a frame head") }
        let width = 1 << Int(first >> 6)
        var length = UInt64(first & 0x3f)
        for offset in 1..<width {
            guard let byte = buffer.getInteger(at: index + 2 + offset, as: UInt8.self) else {
                preconditionFailure("a batch buffer ends inside a frame length")
            }
            length = length << 8 | UInt64(byte)
        }
        remaining = 2 + width + Int(length)
        return type == FrameType.message.rawValue ? Lane(rawValue: lane) : .control
    }
}
