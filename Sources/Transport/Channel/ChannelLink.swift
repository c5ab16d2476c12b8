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

    /// Whether the transport's own per-lane flow control replaces CREDIT frames (QUIC streams).
    /// Such a link sizes received messages by their whole frame, is told through
    /// ``grant(_:on:)`` when the consumer has taken them, and limits sending through
    /// ``sendAllowance(for:)``. Default `false`.
    var providesFlowControl: Bool { get }
    /// Bytes of MESSAGE frames on `lane` the link takes now before its own buffers for that lane
    /// are full; when it returns zero or less, the link calls
    /// ``MessageChannel/linkBecameWritable(_:)`` once it has room again. Default: unbounded.
    func sendAllowance(for lane: Lane) -> Int
    /// The consumer took `bytes` of received frames of `lane`: the link may let the peer send
    /// that much more. Only called on links that provide flow control.
    func grant(_ bytes: Int, on lane: Lane)
}

extension ChannelLink {
    public var providesFlowControl: Bool { false }
    public func sendAllowance(for lane: Lane) -> Int { .max }
    public func grant(_ bytes: Int, on lane: Lane) {}
}
