/// The header of a ``Message``: identity, correlation and versioning, as in KubeEdge's beehive model.
public struct MessageHeader: Hashable, Sendable {
    /// Unique identifier of this message.
    public var id: MessageID
    /// The request this message answers (`nil` unless it is a response).
    public var parentID: MessageID?
    /// Creation time in milliseconds since the Unix epoch.
    public var timestamp: Int64
    /// The Kubernetes `resourceVersion` of the object carried, or empty.
    public var resourceVersion: String
    /// Whether the sender waits for a response (a request made with `request(_:on:timeout:)`).
    public var sync: Bool
    /// Free-form message type (KubeEdge `MessageType`), often empty.
    public var type: String

    /// Creates a header; by default a fresh identifier stamped with the current time.
    public init(
        id: MessageID = .next(), parentID: MessageID? = nil, timestamp: Int64 = MessageHeader.now(),
        resourceVersion: String = "", sync: Bool = false, type: String = ""
    ) {
        self.id = id
        self.parentID = parentID
        self.timestamp = timestamp
        self.resourceVersion = resourceVersion
        self.sync = sync
        self.type = type
    }

    /// The current wall-clock time in milliseconds since the Unix epoch.
    public static func now() -> Int64 {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Int64(spec.tv_sec) * 1000 + Int64(spec.tv_nsec) / 1_000_000
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
