import NIOCore

/// One live connection under a ``MessageChannel``: a backend (WebSocket, QUIC, in-process)
/// implements it. All methods are called on ``eventLoop``.
public protocol ChannelLink: AnyObject, Sendable {
    /// The event loop the connection lives on.
    var eventLoop: any EventLoop { get }
    /// Bytes the channel reserves in front of the first buffer of every batch so the backend can
    /// prepend its own framing without copying (WebSocket: 14).
    var headroom: Int { get }
    /// An allocator for batch buffers.
    var allocator: ByteBufferAllocator { get }
    /// Whether the connection accepts more writes without exceeding its buffer watermarks.
    var isWritable: Bool { get }
    /// Writes one batch of whole frames: `parts` concatenated, the first with ``headroom``
    /// free bytes before its reader index; flushes. The link takes the buffers out of `parts`
    /// (leaving it empty) so that it holds the only reference and can write its framing into
    /// the headroom without a copy.
    func writeBatch(_ parts: inout [ByteBuffer])
    /// Closes the connection, after writing `goAway` if given.
    func close(sending goAway: GoAway?)
}
