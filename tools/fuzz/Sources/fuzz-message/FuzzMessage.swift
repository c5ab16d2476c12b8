// KubeEdge-style messages (header, router, content) as a MESSAGE frame carries them. Every
// message that decodes must encode back to bytes that decode to the same message.
import NIOCore
import Transport

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzMessage(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    var input = ByteBuffer(bytes: UnsafeRawBufferPointer(start: start, count: count))
    let limits = MessageLimits(maxStringLength: 4 * 1024, maxContentLength: 1024 * 1024)
    guard let message = try? MessageCodec.decode(from: &input, limits: limits) else { return 0 }
    var encoded = ByteBuffer()
    MessageCodec.encode(message, into: &encoded)
    guard let again = try? MessageCodec.decode(from: &encoded, limits: limits), again == message else {
        fatalError("message did not survive a round trip: \(message.router)")
    }
    return 0
}
