/// Cumulative counts of what a channel did, for metrics and tests.
public struct ChannelCounters: Sendable, Hashable {
    /// MESSAGE frames written (replays included).
    public var messagesSent = 0
    /// MESSAGE frames received (duplicates included).
    public var messagesReceived = 0
    /// Reliable messages received again after a replay and dropped.
    public var duplicatesDropped = 0
    /// Best-effort messages dropped because no connection could carry them.
    public var bestEffortDropped = 0
    /// State messages replaced by a newer one of the same key before they were written.
    public var stateCoalesced = 0
    /// Reliable messages written again after a reconnect.
    public var replayed = 0
    /// Connections closed because the peer broke the protocol or a limit.
    public var protocolErrors = 0
    /// Connections that completed the HELLO exchange.
    public var handshakes = 0
    /// Keepalive PINGs sent (after ``ChannelConfiguration/keepaliveInterval`` without sending).
    public var pingsSent = 0
    /// PONGs received, each answering one of our PINGs.
    public var pongsReceived = 0
    /// Byte streams this side opened.
    public var streamsOpened = 0
    /// Byte streams the peer opened that this side took.
    public var streamsAccepted = 0
    /// Byte streams the peer opened beyond ``ChannelConfiguration/maxConcurrentStreams``, reset as refused.
    public var streamsRefused = 0
    /// Byte streams reset, by either side or by a lost connection.
    public var streamsReset = 0
    /// Byte streams reset because the peer sent beyond the window or after its FIN.
    public var streamViolations = 0
    /// Byte-stream data bytes written and received.
    public var streamBytesSent = 0
    public var streamBytesReceived = 0

    public init() {}
}

/// A snapshot of one lane's queues, for tests and metrics.
public struct LaneStatistics: Sendable, Hashable {
    /// Bytes queued to send and not yet written.
    public var unsentBytes: Int
    /// Reliable messages held until acknowledged.
    public var unacknowledged: Int
    /// Bytes received and waiting for the consumer.
    public var bufferedBytes: Int
    /// Send credit currently granted by the peer.
    public var credit: Int
    /// Highest reliable sequence delivered to the consumer.
    public var delivered: UInt64
    /// Bytes consumed on this side and not yet credited back to the peer.
    public var uncreditedBytes: Int
}
