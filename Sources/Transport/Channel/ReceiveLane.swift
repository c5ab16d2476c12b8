import NIOCore

/// A received message waiting for its consumer.
struct IncomingEntry {
    var sequence: UInt64
    var message: Message
    /// Frame body length, credited back when consumed.
    var size: Int
}

/// Receiving state of one lane: the buffer the consumer drains, sequence marks and credit.
struct ReceiveLane {
    var buffer = CircularBuffer<IncomingEntry>()
    var bufferedBytes = 0
    /// Highest reliable sequence received in the current peer epoch (duplicates are ≤ this).
    var receivedUpTo: UInt64 = 0
    /// Highest reliable sequence handed to the application.
    var deliveredUpTo: UInt64 = 0
    /// Highest delivered sequence whose mark is persisted.
    var persistedUpTo: UInt64 = 0
    /// Highest sequence acknowledged to the peer.
    var acknowledgedUpTo: UInt64 = 0
    /// Bytes consumed since the last CREDIT frame.
    var consumedSinceGrant = 0
    /// Deliveries since the last ACK.
    var deliveredSinceAck = 0
    /// Taken but not yet acknowledged as handled, oldest first (lanes acknowledged after
    /// handling only); the delivery mark advances over the handled prefix.
    var awaitingHandling = CircularBuffer<HandlingMark>()
    /// The consumer suspended in `next()`.
    var waiter: UnsafeContinuation<Message?, Never>?
}

/// A reliable message the application took but has not yet acknowledged as handled.
struct HandlingMark {
    var id: MessageID
    var sequence: UInt64
    var handled = false
}
