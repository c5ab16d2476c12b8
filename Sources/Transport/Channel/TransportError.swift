import Storage
/// Why a channel operation failed.
public enum TransportError: Error, Sendable, CustomStringConvertible {
    /// The channel was closed.
    case closed
    /// The lane number is not below ``FrameLimits/laneCount``.
    case unknownLane(Lane)
    /// The message is larger than the peer accepts (``MessageLimits/maxContentLength``).
    case messageTooLarge(size: Int, limit: Int)
    /// The outbox could not persist the message (e.g. the disk is full); nothing was sent.
    case outboxWriteFailed(SQLiteError)
    /// No response arrived within the timeout.
    case requestTimedOut(MessageID, Duration)
    /// No connection completed its handshake within the timeout.
    case notConnected
    /// The peer ended the connection.
    case peerWentAway(GoAway)
    /// The peer reset the byte stream.
    case streamReset(StreamReset)
    /// The byte stream ended without a FIN from the peer: its connection was lost, the channel
    /// closed, or this side reset it (the reason says which).
    case streamAborted(String)
    /// This side has ``ChannelConfiguration/maxConcurrentStreams`` streams open already.
    case streamLimitReached(Int)
    /// The peer did not announce the `streams` capability in its HELLO.
    case streamsUnsupported

    public var description: String {
        switch self {
        case .closed: "the channel is closed"
        case .unknownLane(let lane): "lane \(lane.rawValue) is not configured"
        case .messageTooLarge(let size, let limit): "message content of \(size) bytes exceeds maxContentLength=\(limit)"
        case .outboxWriteFailed(let error): "the outbox could not persist the message: \(error)"
        case .requestTimedOut(let id, let timeout): "no response to \(id) within \(timeout)"
        case .notConnected: "the channel is not connected"
        case .peerWentAway(let goAway): "the peer went away: \(goAway)"
        case .streamReset(let reset): "the peer reset the stream (\(reset.code)): \(reset.reason)"
        case .streamAborted(let reason): "the stream ended: \(reason)"
        case .streamLimitReached(let limit): "\(limit) streams are open on this channel already (maxConcurrentStreams)"
        case .streamsUnsupported: "the peer does not support byte streams"
        }
    }
}

/// What ``ChannelEndpoint/trySend(_:on:delivery:)`` did with a message.
public enum TrySendResult: Sendable, Equatable {
    /// Queued (and for reliable classes, handed to the outbox writer).
    case accepted
    /// A best-effort message dropped because the channel is disconnected (counted).
    case dropped
    /// The lane's queue or the outbox bound is full; nothing was queued.
    case wouldBlock
}
