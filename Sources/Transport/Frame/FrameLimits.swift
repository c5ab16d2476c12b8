/// Bounds the frame codec enforces before it allocates or waits for any byte of a frame body.
public struct FrameLimits: Sendable, Hashable {
    /// Longest frame body, in bytes. Default 16 MiB + 64 KiB (room for a maximal message).
    public var maxFrameLength: Int
    /// Bounds for the message inside a MESSAGE frame.
    public var message: MessageLimits
    /// Lane numbers must be below this. Default 16.
    public var laneCount: Int
    /// Most resume points in a HELLO. Default 256.
    public var maxResumePoints: Int
    /// Most capabilities in a HELLO. Default 32.
    public var maxCapabilities: Int
    /// Longest capability name. Default 64 bytes.
    public var maxCapabilityLength: Int
    /// Longest node id in a HELLO. Default 253 bytes (a DNS name, as Kubernetes node names are).
    public var maxNodeIDLength: Int
    /// Longest `state` key of a MESSAGE frame. Default 1 KiB.
    public var maxStateKeyLength: Int
    /// Longest GOAWAY reason. Default 1 KiB.
    public var maxGoAwayReasonLength: Int
    /// Longest STREAM_OPEN header (what the stream is for). Default 16 KiB.
    public var maxStreamOpenLength: Int = 16 * 1024

    /// Creates limits with documented defaults.
    public init(
        maxFrameLength: Int = 16 * 1024 * 1024 + 64 * 1024, message: MessageLimits = MessageLimits(),
        laneCount: Int = 16, maxResumePoints: Int = 256, maxCapabilities: Int = 32,
        maxCapabilityLength: Int = 64, maxNodeIDLength: Int = 253, maxStateKeyLength: Int = 1024,
        maxGoAwayReasonLength: Int = 1024
    ) {
        self.maxFrameLength = maxFrameLength
        self.message = message
        self.laneCount = laneCount
        self.maxResumePoints = maxResumePoints
        self.maxCapabilities = maxCapabilities
        self.maxCapabilityLength = maxCapabilityLength
        self.maxNodeIDLength = maxNodeIDLength
        self.maxStateKeyLength = maxStateKeyLength
        self.maxGoAwayReasonLength = maxGoAwayReasonLength
    }
}
