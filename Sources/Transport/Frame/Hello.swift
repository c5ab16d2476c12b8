/// The first frame each side sends on a connection: who it is, which session it continues, and
/// how far it has received on each lane so the peer replays only the rest.
public struct Hello: Hashable, Sendable {
    /// The protocol version this implementation speaks.
    public static let currentVersion: UInt64 = 1

    /// Protocol version of the sender.
    public var version: UInt64
    /// The sender's node id (the edge node name, or the cloud's name).
    public var nodeID: String
    /// The sender's outbox epoch: it changes only when the sender lost its persisted state, and
    /// sequence numbers are meaningful only within one epoch.
    public var sessionID: MessageID
    /// The peer epoch that ``resumePoints`` refer to (``MessageID/zero`` when none).
    public var peerSessionID: MessageID
    /// Per lane, the highest reliable sequence number the sender has delivered and persisted.
    public var resumePoints: [ResumePoint]
    /// Optional features the sender supports (lower-case names, e.g. `batch`).
    public var capabilities: [String]

    /// Creates a HELLO.
    public init(
        version: UInt64 = Hello.currentVersion, nodeID: String, sessionID: MessageID,
        peerSessionID: MessageID = .zero, resumePoints: [ResumePoint] = [], capabilities: [String] = []
    ) {
        self.version = version
        self.nodeID = nodeID
        self.sessionID = sessionID
        self.peerSessionID = peerSessionID
        self.resumePoints = resumePoints
        self.capabilities = capabilities
    }

    /// How far a lane has been delivered.
    public struct ResumePoint: Hashable, Sendable {
        /// The lane.
        public var lane: Lane
        /// The highest reliable sequence number delivered and persisted on it.
        public var delivered: UInt64

        /// Creates a resume point.
        public init(lane: Lane, delivered: UInt64) {
            self.lane = lane
            self.delivered = delivered
        }
    }
}
