import NIOCore

/// One unit of the channel protocol (see `docs/protocol.md`).
public enum Frame: Sendable, Equatable {
    /// Opens or resumes a session.
    case hello(Hello)
    /// Carries an application message on a lane.
    case message(MessageFrame)
    /// Acknowledges every reliable message on `lane` up to and including `sequence`.
    case ack(lane: Lane, sequence: UInt64)
    /// Allows the receiver of this frame to send `bytes` more message bytes on `lane`.
    case credit(lane: Lane, bytes: UInt64)
    /// Asks for a PONG with the same opaque value.
    case ping(UInt64)
    /// Answers a PING.
    case pong(UInt64)
    /// Ends the connection with a reason.
    case goAway(GoAway)
    /// Opens a byte stream (see ``ByteStream``).
    case streamOpen(StreamOpen)
    /// Carries bytes of one direction of a byte stream.
    case streamData(stream: UInt64, data: ByteBuffer)
    /// Allows the receiver of this frame to send `bytes` more data bytes on `stream`.
    case streamWindow(stream: UInt64, bytes: UInt64)
    /// Ends the sender's direction of `stream` (half-close): no more data follows.
    case streamFinish(stream: UInt64)
    /// Aborts both directions of a stream, with a reason.
    case streamReset(StreamReset)

    /// The frame type on the wire.
    public var type: FrameType {
        switch self {
        case .hello: .hello
        case .message: .message
        case .ack: .ack
        case .credit: .credit
        case .ping: .ping
        case .pong: .pong
        case .goAway: .goAway
        case .streamOpen: .streamOpen
        case .streamData: .streamData
        case .streamWindow: .streamWindow
        case .streamFinish: .streamFinish
        case .streamReset: .streamReset
        }
    }
}

/// The body of a MESSAGE frame.
public struct MessageFrame: Sendable, Equatable {
    /// The lane it travels on.
    public var lane: Lane
    /// Its sequence number on the lane (0 for best-effort messages, which are not sequenced).
    public var sequence: UInt64
    /// Its delivery class.
    public var delivery: Delivery
    /// The message.
    public var message: Message

    /// Creates a MESSAGE frame body.
    public init(lane: Lane, sequence: UInt64, delivery: Delivery, message: Message) {
        self.lane = lane
        self.sequence = sequence
        self.delivery = delivery
        self.message = message
    }
}

/// The body of a STREAM_OPEN frame.
public struct StreamOpen: Sendable, Equatable {
    /// The stream's number: odd when the client side (the one that sent the first HELLO) opened
    /// it, even when the server side did; increasing, never reused on a connection.
    public var stream: UInt64
    /// Data bytes the receiver of this frame may send on the stream before a STREAM_WINDOW.
    public var window: UInt64
    /// What the stream is for, opaque to the channel (bounded by ``FrameLimits/maxStreamOpenLength``).
    public var header: ByteBuffer

    /// Creates a STREAM_OPEN body.
    public init(stream: UInt64, window: UInt64, header: ByteBuffer) {
        self.stream = stream
        self.window = window
        self.header = header
    }
}

/// The body of a STREAM_RESET frame.
public struct StreamReset: Sendable, Equatable {
    /// The stream aborted.
    public var stream: UInt64
    /// Why.
    public var code: StreamResetCode
    /// A human-readable explanation (bounded by ``FrameLimits/maxGoAwayReasonLength``).
    public var reason: String

    /// Creates a STREAM_RESET body.
    public init(stream: UInt64, code: StreamResetCode, reason: String) {
        self.stream = stream
        self.code = code
        self.reason = reason
    }
}
