import NIOCore

/// Reads the first frame a server receives on a new connection, which must be HELLO.
public enum HelloReader {
    /// What the first bytes of a connection turned out to be.
    public enum Outcome: Sendable {
        /// A HELLO; `remainder` holds any bytes after it.
        case hello(Hello, remainder: ByteBuffer)
        /// Not enough bytes yet.
        case needMoreBytes
        /// A malformed frame or a frame other than HELLO: answer with this GOAWAY and close.
        case refused(GoAway)
    }

    /// Decodes the opening HELLO from `buffer`.
    public static func read(_ buffer: ByteBuffer, limits: FrameLimits) -> Outcome {
        var buffer = buffer
        do {
            guard let frame = try FrameCodec.decode(from: &buffer, limits: limits) else { return .needMoreBytes }
            guard case .hello(let hello) = frame else {
                return .refused(GoAway(code: .protocolError, reason: "the first frame must be HELLO, got \(frame.type)"))
            }
            guard hello.version == Hello.currentVersion else {
                return .refused(GoAway(code: .unsupportedVersion, reason: "protocol version \(hello.version) is not supported; this side speaks \(Hello.currentVersion)"))
            }
            return .hello(hello, remainder: buffer)
        } catch {
            return .refused(GoAway(refusing: error))
        }
    }
}
