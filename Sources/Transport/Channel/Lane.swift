/// An independent, ordered sub-stream of a channel. Order holds within a lane, never across lanes,
/// and a lane that is out of credit never holds up another.
public struct Lane: RawRepresentable, Hashable, Sendable, Comparable, CustomStringConvertible {
    /// The lane number on the wire (one byte).
    public var rawValue: UInt8

    /// Creates a lane from its wire number.
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// Channel control; carries no application messages in this version.
    public static let control = Lane(rawValue: 0)
    /// State synchronisation of Kubernetes objects (`state(key)` and reliable traffic).
    public static let state = Lane(rawValue: 1)
    /// Events: device data, MQTT bridge traffic, status reports.
    public static let events = Lane(rawValue: 2)
    /// Requests and their responses (`sync` messages).
    public static let request = Lane(rawValue: 3)
    /// Large transfers that must not delay the other lanes.
    public static let bulk = Lane(rawValue: 4)

    /// The lanes every channel opens by default.
    public static let standard: [Lane] = [.control, .state, .events, .request, .bulk]

    public static func < (lhs: Lane, rhs: Lane) -> Bool { lhs.rawValue < rhs.rawValue }

    public var description: String {
        switch rawValue {
        case 0: "control"
        case 1: "state"
        case 2: "events"
        case 3: "request"
        case 4: "bulk"
        default: "lane\(rawValue)"
        }
    }
}
