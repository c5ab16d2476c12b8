import NIOCore

/// The byte streams of a ``MessageChannel``, guarded by the channel's lock.
///
/// A stream has a *token*, unique for the life of the channel, and while its connection lasts a
/// *wire number* (odd when the client side opened it, even when the server side did). A slot
/// stays until the stream is over on the wire (both FINs, or a reset, or its connection ended)
/// **and** its ``ByteStream`` handle is gone, so a handle always finds the stream's outcome.
struct StreamTable {
    /// The HELLO capability that announces byte streams.
    static let capability = "streams"

    var slots: [UInt64: StreamSlot] = [:]
    /// Wire number → token, for streams of the current connection.
    var byWire: [UInt64: UInt64] = [:]
    var nextToken: UInt64 = 1
    /// The wire number this side opens next (1 for the client side, 2 for the server side).
    var nextLocal: UInt64 = 1
    /// The highest wire number the peer has opened on this connection.
    var highestPeer: UInt64 = 0
    /// Whether the peer's HELLO announced byte streams.
    var peerSupportsStreams = false
    /// Streams not yet over on the wire, by the side that opened them.
    var liveLocal = 0
    var livePeer = 0
    /// Streams the peer opened that the application has not taken yet.
    var incoming = CircularBuffer<ByteStream>()
    var acceptWaiter: UnsafeContinuation<ByteStream?, Never>?
    /// Tokens of streams with data or a FIN to write, served round-robin.
    var sendable: [UInt64] = []
    var nextSendable = 0

    /// Whether `wire` is a number the side that is the client (`clientSide`) opens.
    static func isClientNumber(_ wire: UInt64) -> Bool { wire & 1 == 1 }
}

/// One byte stream's state.
struct StreamSlot {
    let wire: UInt64
    let openedLocally: Bool
    /// Data bytes this side may still send (the peer's window).
    var credit: Int
    var sendQueue = CircularBuffer<ByteBuffer>()
    var queuedBytes = 0
    /// The application finished its direction: a FIN follows the queued data.
    var finishRequested = false
    var finishSent = false
    var writeWaiter: UnsafeContinuation<Void, any Error>?
    var received = CircularBuffer<ByteBuffer>()
    var receivedBytes = 0
    /// Data bytes the peer may still send before this side's next STREAM_WINDOW.
    var windowLeft: Int
    var consumedSinceGrant = 0
    var peerFinished = false
    var readWaiter: UnsafeContinuation<ByteBuffer?, any Error>?
    /// Why the stream ended without both FINs.
    var failure: (any Error)?
    /// Over on the wire: both FINs exchanged, or reset, or the connection ended.
    var closedOnWire = false
    /// The ``ByteStream`` handle is gone.
    var handleReleased = false
    /// Listed in ``StreamTable/sendable``.
    var listed = false

    /// Whether the slot has bytes or a FIN it may write now.
    var hasSendable: Bool {
        guard !closedOnWire else { return false }
        if !sendQueue.isEmpty { return credit > 0 }
        return finishRequested && !finishSent
    }
}
