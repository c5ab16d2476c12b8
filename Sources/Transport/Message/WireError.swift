/// Why bytes from the network were refused. Every case names the field or limit involved, so a
/// log line or a GOAWAY reason says exactly what was wrong.
public enum WireError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The input ended inside `field`.
    case truncated(field: String)
    /// `field` declared `value`, above the configured `limit` named `limitName`.
    case limitExceeded(field: String, value: UInt64, limit: Int, limitName: String)
    /// A string field is not valid UTF-8.
    case invalidUTF8(field: String)
    /// The frame type byte is not one this protocol defines.
    case unknownFrameType(UInt8)
    /// The delivery class byte of a MESSAGE frame is unknown.
    case unknownDeliveryClass(UInt8)
    /// A frame carried bytes after its last field.
    case trailingBytes(frame: String, count: Int)
    /// A field holds a value the protocol forbids.
    case invalidValue(field: String, reason: String)

    public var description: String {
        switch self {
        case .truncated(let field): "input ended inside \(field)"
        case .limitExceeded(let field, let value, let limit, let limitName):
            "\(field) is \(value), above the limit \(limitName)=\(limit)"
        case .invalidUTF8(let field): "\(field) is not valid UTF-8"
        case .unknownFrameType(let type): "unknown frame type 0x\(String(type, radix: 16))"
        case .unknownDeliveryClass(let value): "unknown delivery class \(value)"
        case .trailingBytes(let frame, let count): "\(count) unexpected bytes after the fields of a \(frame) frame"
        case .invalidValue(let field, let reason): "\(field): \(reason)"
        }
    }
}
