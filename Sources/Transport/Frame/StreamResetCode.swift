/// Why a byte stream was reset. Unknown codes decode as ``other(_:)``.
public enum StreamResetCode: Hashable, Sendable, CustomStringConvertible {
    /// The application gave up on the stream (the reader went away, say).
    case cancelled
    /// The receiver does not take the stream: its per-node stream limit is reached, or it
    /// serves nothing for the stream's header.
    case refused
    /// The peer sent more data than the stream's window allowed.
    case flowControl
    /// The stream broke the protocol (data after its FIN, say).
    case protocolError
    /// The sender failed internally.
    case internalError
    /// A code this version does not know (applications use 16 and above).
    case other(UInt64)

    /// The wire value.
    public var rawValue: UInt64 {
        switch self {
        case .cancelled: 0
        case .refused: 1
        case .flowControl: 2
        case .protocolError: 3
        case .internalError: 4
        case .other(let value): value
        }
    }

    /// Decodes a wire value.
    public init(rawValue: UInt64) {
        switch rawValue {
        case 0: self = .cancelled
        case 1: self = .refused
        case 2: self = .flowControl
        case 3: self = .protocolError
        case 4: self = .internalError
        default: self = .other(rawValue)
        }
    }

    public var description: String {
        switch self {
        case .cancelled: "cancelled"
        case .refused: "refused"
        case .flowControl: "flowControl"
        case .protocolError: "protocolError"
        case .internalError: "internalError"
        case .other(let value): "code \(value)"
        }
    }
}
