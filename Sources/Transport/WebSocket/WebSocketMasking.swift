/// How the client masks the frames it sends (RFC 6455 §5.3).
public enum WebSocketMasking: Sendable, Hashable {
    /// The mask bit is set with an all-zero key: valid on the wire for any server, and unmasking
    /// is a no-op, so neither side copies payload bytes. Masking guards browsers' proxies against
    /// cache poisoning and adds nothing under TLS between our own endpoints. The default.
    case zeroKey
    /// A fresh random key per frame, as the RFC asks of browsers; costs one copy of every payload.
    case randomKey
}
