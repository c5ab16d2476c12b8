import Transport

/// Why CloudHub refused an operation of the layers above it.
public enum CloudHubError: Error, Equatable, CustomStringConvertible {
    /// The node name is not a valid Kubernetes node name.
    case invalidNodeName(String)
    /// The hub already keeps ``CloudHubConfiguration/nodeLimit`` sessions.
    case nodeLimitReached(Int)
    /// A message for `node` names another node in its resource.
    case misaddressed(node: String, resource: String)
    /// ``CloudHub/start()`` has not run, or ``CloudHub/stop()`` has.
    case notRunning

    public var description: String {
        switch self {
        case .invalidNodeName(let reason): reason
        case .nodeLimitReached(let limit): "the hub already holds its limit of \(limit) nodes"
        case .misaddressed(let node, let resource): "a message for node \(node) names another node: \(resource)"
        case .notRunning: "the hub is not running"
        }
    }
}

/// What the hub counted since it started.
public struct CloudHubCounters: Sendable, Equatable {
    /// Connections refused before a session: no or wrong certificate, HELLO naming another node,
    /// node limit.
    public var refusedConnections = 0
    /// Messages from nodes refused by the ``NodeAccessPolicy``.
    public var refusedMessages = 0
    /// Messages from nodes handed to the layers above.
    public var receivedMessages = 0
    /// Messages the layers above sent to nodes (accepted by the node's channel).
    public var sentMessages = 0
    /// Node events dropped because nobody read ``CloudHub/events`` in time.
    public var droppedEvents = 0
    /// Node connections closed because the node broke the protocol or a limit (a frame over
    /// the length limit, a lane beyond the lane count, more than its credit) or fell silent past
    /// the dead-peer timeout, summed over the nodes the hub holds.
    public var channelProtocolErrors = 0
    /// Byte streams (logs, exec, attach) opened to the nodes, over their channels' lives.
    public var streamsOpened = 0
    /// Streams a node opened beyond the per-node limit (`maxConcurrentStreams`), refused.
    public var streamsRefused = 0
    /// Streams reset, by either side or by a lost connection.
    public var streamsReset = 0
    /// Streams reset because a node sent beyond a stream's window or after its FIN.
    public var streamViolations = 0

    /// WebSocket connections closed on accept: `maxConnections` reached.
    public var webSocketRefusedOverLimit = 0
    /// WebSocket connections closed for not finishing TLS, upgrade and HELLO within `helloTimeout`.
    public var webSocketHandshakeTimeouts = 0
    /// WebSocket connections whose TLS handshake failed (bad or missing certificate, not TLS).
    public var webSocketFailedHandshakes = 0
    /// QUIC Initial packets dropped: `maxConnections` or `maxHandshakes` reached.
    public var quicRefusedOverLimit = 0
    /// QUIC connections that ended before their handshake completed (timed out or failed).
    public var quicAbandonedHandshakes = 0
    /// QUIC datagrams dropped outside connections: malformed, unknown, refused.
    public var quicDroppedDatagrams = 0
    /// QUIC Retry packets sent to validate new clients' addresses.
    public var quicRetries = 0
    /// QUIC Initial packets with a Retry or address token that did not validate.
    public var quicInvalidTokens = 0

    /// Certificate endpoint requests refused for a missing, forged, expired or foreign token (401).
    public var certificateRefusedUnauthorized = 0
    /// Certificate endpoint requests for another node's certificate (403).
    public var certificateRefusedForbidden = 0
    /// Certificate endpoint requests refused as malformed, too large, or for an unknown path.
    public var certificateRefusedMalformed = 0
    /// Certificate endpoint connections closed on accept: its `maxConnections` reached.
    public var certificateConnectionsOverLimit = 0
    /// Certificate endpoint connections closed without a whole request within its timeout.
    public var certificateRequestTimeouts = 0
    /// Certificate endpoint requests answered (CA certificate, node certificates issued).
    public var certificateRequestsAnswered = 0
}

/// A message from a node, with the node's name from its certificate.
public struct NodeMessage: Sendable {
    /// The sender, authenticated by its certificate.
    public var node: String
    /// The lane it arrived on.
    public var lane: Lane
    public var message: Message
}
