import NIOCore

/// A bidirectional byte stream on a ``MessageChannel``, beside its lanes: ordered bytes in each
/// direction with a flow-control window of its own, half-close (``finish()``) and reset with a
/// reason. Streams live on one connection: when it ends, every stream on it ends with
/// ``TransportError/streamAborted(_:)``.
///
/// Read from one task and write from one task (they may be different). Dropping the last
/// reference to a stream that is still open resets it as cancelled.
public final class ByteStream: Sendable {
    /// What the stream is for, as its opener described it in STREAM_OPEN.
    public let header: ByteBuffer
    let channel: MessageChannel
    let token: UInt64

    init(channel: MessageChannel, token: UInt64, header: ByteBuffer) {
        self.channel = channel
        self.token = token
        self.header = header
    }

    deinit { channel.streamHandleReleased(token) }

    /// The next bytes from the peer, in order; `nil` once the peer finished its direction and
    /// every byte was read. Throws if the stream was reset or its connection lost.
    public func read() async throws -> ByteBuffer? {
        try await channel.readStream(token)
    }

    /// Queues `data` for the peer; suspends while the stream's send buffer
    /// (``ChannelConfiguration/streamSendBuffer``) is full. Throws once the stream has ended.
    public func write(_ data: ByteBuffer) async throws {
        try await channel.writeStream(token, data)
    }

    /// Ends this side's direction after the bytes already queued (half-close). Reading goes on.
    public func finish() {
        channel.finishStream(token)
    }

    /// Aborts both directions: the peer's reads and writes fail with `code` and `reason`.
    public func reset(_ code: StreamResetCode = .cancelled, reason: String) {
        channel.resetStream(token, code: code, reason: reason)
    }
}

/// The byte streams a peer opens on a channel, in the order they arrived. Iterate from one task;
/// the sequence ends when the channel closes.
public struct IncomingStreams: AsyncSequence, Sendable {
    public typealias Element = ByteStream
    let channel: MessageChannel

    public func makeAsyncIterator() -> Iterator { Iterator(channel: channel) }

    /// Returns the next stream the peer opened; `nil` once the channel closed.
    public struct Iterator: AsyncIteratorProtocol {
        let channel: MessageChannel

        public mutating func next() async -> ByteStream? { await channel.acceptStream() }
        public mutating func next(isolation actor: isolated (any Actor)?) async -> ByteStream? {
            await channel.acceptStream()
        }
    }
}
