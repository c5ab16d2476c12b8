/// How hard the channel tries to deliver a message.
public enum Delivery: Hashable, Sendable {
    /// Sent once if the connection is up; dropped (and counted) while disconnected or when the
    /// connection breaks before it is written. Never persisted, never replayed.
    case bestEffort
    /// Written to the outbox before it is sent, retried until the peer acknowledges it, surviving
    /// restarts of either side. Delivered to the receiving application once, in lane order.
    case reliable
    /// Reliable, and a newer message with the same key replaces an older one that is not yet
    /// acknowledged: a peer that was away receives the latest state, not the history.
    case state(key: String)

    /// Whether the message is persisted and acknowledged.
    public var isReliable: Bool {
        if case .bestEffort = self { return false }
        return true
    }

    /// The coalescing key of a `state` message.
    public var stateKey: String? {
        if case .state(let key) = self { return key }
        return nil
    }

    /// The wire code of the class (see `docs/protocol.md`).
    var wireCode: UInt8 {
        switch self {
        case .bestEffort: 0
        case .reliable: 1
        case .state: 2
        }
    }
}
