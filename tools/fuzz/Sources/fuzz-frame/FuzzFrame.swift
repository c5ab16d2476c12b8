// Frames as they arrive from a peer (HELLO with resume points, MESSAGE, ACK, CREDIT, PING,
// PONG, GOAWAY), through the decoder both transports use. Every frame that decodes must
// encode back to bytes that decode to the same frame.
import NIOCore
import Transport

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzFrame(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    var input = ByteBuffer(bytes: UnsafeRawBufferPointer(start: start, count: count))
    let limits = FrameLimits()
    while true {
        let frame: Frame?
        do {
            frame = try FrameCodec.decode(from: &input, limits: limits)
        } catch {
            return 0  // refused with a WireError: what a peer's bad bytes should get
        }
        guard let frame else { return 0 }  // needs more bytes
        var encoded = ByteBuffer()
        FrameCodec.encode(frame, into: &encoded)
        guard let again = try? FrameCodec.decode(from: &encoded, limits: limits), again == frame, encoded.readableBytes == 0 else {
            fatalError("frame did not survive a round trip: \(frame)")
        }
    }
}
