/// The last frame a side sends before it closes a connection, with the reason.
public struct GoAway: Hashable, Sendable, CustomStringConvertible {
    /// Why the connection ends.
    public var code: Code
    /// A human-readable explanation (bounded by ``FrameLimits/maxGoAwayReasonLength``).
    public var reason: String

    /// Creates a GOAWAY.
    public init(code: Code, reason: String) {
        self.code = code
        self.reason = reason
    }

    /// The reason codes on the wire. Unknown codes decode as ``Code/other(_:)``.
    public enum Code: Hashable, Sendable {
        /// Orderly close.
        case normal
        /// The peer sent a malformed frame.
        case protocolError
        /// The peer broke a configured limit.
        case limitExceeded
        /// The peer's protocol version is not supported.
        case unsupportedVersion
        /// The peer is not allowed (identity or authorisation failed).
        case unauthorized
        /// The peer was silent longer than the dead-peer timeout.
        case deadPeer
        /// A newer connection of the same node replaced this one.
        case replaced
        /// The sender is shutting down.
        case shuttingDown
        /// The sender failed internally (e.g. its outbox could not be written).
        case internalError
        /// A code this version does not know.
        case other(UInt64)

        /// The wire value.
        public var rawValue: UInt64 {
            switch self {
            case .normal: 0
            case .protocolError: 1
            case .limitExceeded: 2
            case .unsupportedVersion: 3
            case .unauthorized: 4
            case .deadPeer: 5
            case .replaced: 6
            case .shuttingDown: 7
            case .internalError: 8
            case .other(let value): value
            }
        }

        /// Decodes a wire value.
        public init(rawValue: UInt64) {
            switch rawValue {
            case 0: self = .normal
            case 1: self = .protocolError
            case 2: self = .limitExceeded
            case 3: self = .unsupportedVersion
            case 4: self = .unauthorized
            case 5: self = .deadPeer
            case 6: self = .replaced
            case 7: self = .shuttingDown
            case 8: self = .internalError
            default: self = .other(rawValue)
            }
        }
    }

    public var description: String { "GOAWAY(\(code), \(reason))" }

    /// The GOAWAY that answers a malformed or over-limit input.
    public init(refusing error: WireError) {
        switch error {
        case .limitExceeded: self.init(code: .limitExceeded, reason: error.description)
        default: self.init(code: .protocolError, reason: error.description)
        }
    }
}
