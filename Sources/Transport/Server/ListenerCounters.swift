import Synchronization

/// What a listener refused or dropped before any node's session existed, for `/metrics`.
/// Every count is cumulative since the listener started.
public struct ListenerCounters: Sendable, Equatable {
    /// Connections accepted (QUIC: handshakes begun).
    public var accepted = 0
    /// Connections closed on accept, or QUIC Initial packets dropped, because `maxConnections`
    /// or `maxHandshakes` was reached.
    public var refusedOverLimit = 0
    /// Connections that did not finish TLS, the WebSocket upgrade and their HELLO within the
    /// hello timeout (QUIC: handshakes that ended before completing, timed out or failed).
    public var handshakeTimeouts = 0
    /// Connections whose TLS handshake or upgrade failed (a bad certificate, bytes that are not
    /// TLS, a request for another path).
    public var failedHandshakes = 0
    /// QUIC datagrams dropped outside any connection: malformed, unknown, or refused.
    public var droppedDatagrams = 0
    /// QUIC Retry packets sent (address validation of a new client).
    public var retries = 0
    /// QUIC Initial packets whose Retry or address token did not validate.
    public var invalidTokens = 0

    public init() {}
}

/// ``ListenerCounters`` shared by a listener and its connections' handlers.
final class SharedListenerCounters: Sendable {
    private let value = Mutex(ListenerCounters())

    func update(_ body: (inout ListenerCounters) -> Void) { value.withLock { body(&$0) } }

    var snapshot: ListenerCounters { value.withLock { $0 } }
}
