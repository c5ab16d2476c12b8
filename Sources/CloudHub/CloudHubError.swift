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
}

/// A message from a node, with the node's name from its certificate.
public struct NodeMessage: Sendable {
    /// The sender, authenticated by its certificate.
    public var node: String
    /// The lane it arrived on.
    public var lane: Lane
    public var message: Message
}
