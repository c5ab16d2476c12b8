import NIOCore

/// A bounded, streaming frame decoder for byte streams (QUIC streams, fuzzing, tests).
///
/// It never buffers more than one frame beyond ``FrameLimits/maxFrameLength``: a header that
/// declares a longer body fails before the body arrives.
public struct FrameDecoder: NIOSingleStepByteToMessageDecoder {
    public typealias InboundOut = Frame

    /// The limits applied to every frame.
    public let limits: FrameLimits

    /// Creates a decoder with `limits`.
    public init(limits: FrameLimits) { self.limits = limits }

    public mutating func decode(buffer: inout ByteBuffer) throws -> Frame? {
        try FrameCodec.decode(from: &buffer, limits: limits)
    }

    public mutating func decodeLast(buffer: inout ByteBuffer, seenEOF: Bool) throws -> Frame? {
        if let frame = try decode(buffer: &buffer) { return frame }
        if seenEOF, buffer.readableBytes > 0 { throw WireError.truncated(field: "frame") }
        return nil
    }
}
