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
