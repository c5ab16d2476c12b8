import Transport

/// Where the cloud is, who this node is, and how EdgeHub connects, retries and routes.
/// Defaults follow KubeEdge's edgeHub (heartbeat 15 s, ports 10000/10001/10002).
public struct EdgeHubConfiguration: Sendable {
    /// This node's name (must be a valid Kubernetes node name; it goes into the certificate).
    public var nodeName: String
    /// The cloud's address (IP or DNS name).
    public var cloudHost: String
    /// The name the cloud's server certificate must carry. Default: ``cloudHost``.
    public var serverName: String?
    /// CloudHub's QUIC port. Default 10001.
    public var quicPort: Int
    /// CloudHub's WebSocket port. Default 10000.
    public var webSocketPort: Int
    /// CloudHub's HTTPS (certificate) port. Default 10002.
    public var httpsPort: Int
    /// WebSocket upgrade path. Default `/channel`.
    public var webSocketPath: String
    /// Where `ca.crt`, `node.key` and `node.crt` are kept.
    public var certificatesDirectory: String
    /// A bootstrap token (`sha256hex(CA).JWT`) for the first join; not needed once a
    /// certificate exists.
    public var token: String?
    /// The SQLite file of the edge's outbox (edge→cloud reliable messages while offline,
    /// receive marks). `nil` keeps them in memory only.
    public var outboxPath: String?
    /// Whether QUIC is tried first. Default on.
    public var preferQUIC: Bool
    /// How long a QUIC handshake may take before EdgeHub falls back to WebSocket (UDP
    /// blocked looks like silence). Default 3 s.
    public var quicHandshakeTimeout: Duration
    /// While on WebSocket, how often QUIC is tried again. Default 60 s.
    public var quicRetryInterval: Duration
    /// First reconnect delay; it doubles per failed attempt up to ``maxBackoff``, each delay
    /// scaled by a random factor in 0.5–1.5 (jitter) so that many edges do not reconnect in
    /// step. Default 0.5 s.
    public var initialBackoff: Duration
    /// Longest reconnect delay. Default 30 s.
    public var maxBackoff: Duration
    /// Time for the HELLO exchange after a connection opens. Default 10 s.
    public var helloTimeout: Duration
    /// The channel to the cloud: limits, windows, keepalive (15 s) and dead-peer timeout.
    /// EdgeHub sets the node ids.
    public var channel: ChannelConfiguration
    /// Cloud message group → bus module group (KubeEdge's edgeHub dispatch). Default
    /// `resource`→`meta`, `func`→`meta`, `twin`→`twin`, `user`→`bus`, `meta`→`meta`,
    /// `servicebus`→`servicebus`.
    public var groupRoutes: [String: String]
    /// The delivery class of module→cloud messages by lane. Default reliable on every lane but
    /// control.
    public var deliveryByLane: [UInt8: Delivery]
    /// Lanes whose module→cloud messages are coalesced by resource: a newer message about the
    /// same resource replaces one the cloud has not yet acknowledged (pod status, device
    /// reports). Default the state lane.
    public var coalescedLanes: Set<Lane> = [.state]
    /// Module→cloud messages put into the channel at once at most (one outbox commit). Default 512.
    public var maxBatch = 512
    /// Where in its life (a fraction, chosen at random in this range per certificate) the node
    /// certificate is renewed. Default 0.7–0.9 (KubeEdge's).
    public var rotationWindow: ClosedRange<Double>
    /// How often the certificate's age is checked. Default 1 h.
    public var rotationCheckInterval: Duration
    /// The clock of the reconnect back-off and the certificate's renewal (tests advance their
    /// own). Default the system's.
    public var clock: any ServiceClock = .system

    /// Creates a configuration with the documented defaults.
    public init(
        nodeName: String, cloudHost: String, certificatesDirectory: String, token: String? = nil, outboxPath: String? = nil,
        serverName: String? = nil, quicPort: Int = 10001, webSocketPort: Int = 10000, httpsPort: Int = 10002, webSocketPath: String = "/channel",
        preferQUIC: Bool = true, quicHandshakeTimeout: Duration = .seconds(3), quicRetryInterval: Duration = .seconds(60),
        initialBackoff: Duration = .milliseconds(500), maxBackoff: Duration = .seconds(30), helloTimeout: Duration = .seconds(10),
        channel: ChannelConfiguration? = nil,
        groupRoutes: [String: String] = ["resource": "meta", "func": "meta", "meta": "meta", "twin": "twin", "user": "bus", "servicebus": "servicebus"],
        deliveryByLane: [UInt8: Delivery] = [Lane.state.rawValue: .reliable, Lane.events.rawValue: .reliable, Lane.request.rawValue: .reliable, Lane.bulk.rawValue: .reliable],
        rotationWindow: ClosedRange<Double> = 0.7...0.9, rotationCheckInterval: Duration = .seconds(3600)
    ) {
        self.nodeName = nodeName
        self.cloudHost = cloudHost
        self.certificatesDirectory = certificatesDirectory
        self.token = token
        self.outboxPath = outboxPath
        self.serverName = serverName
        self.quicPort = quicPort
        self.webSocketPort = webSocketPort
        self.httpsPort = httpsPort
        self.webSocketPath = webSocketPath
        self.preferQUIC = preferQUIC
        self.quicHandshakeTimeout = quicHandshakeTimeout
        self.quicRetryInterval = quicRetryInterval
        self.initialBackoff = initialBackoff
        self.maxBackoff = maxBackoff
        self.helloTimeout = helloTimeout
        self.channel = channel ?? ChannelConfiguration(localNodeID: nodeName, peerNodeID: "cloudhub")
        self.groupRoutes = groupRoutes
        self.deliveryByLane = deliveryByLane
        self.rotationWindow = rotationWindow
        self.rotationCheckInterval = rotationCheckInterval
    }

    var effectiveServerName: String { serverName ?? cloudHost }
}
