import Transport

/// Everything CloudHub listens on, limits and keeps. Defaults match KubeEdge's cloudHub where it
/// has one (ports 10000/10001/10002, 24 h tokens, 365-day node certificates).
public struct CloudHubConfiguration: Sendable {
    /// Address the listeners bind. Default `0.0.0.0`; tests bind `127.0.0.1`.
    public var bindAddress: String
    /// WebSocket+TLS port; 0 picks a free one, `nil` disables the listener. Default 10000.
    public var webSocketPort: Int?
    /// QUIC (UDP) port; 0 picks a free one, `nil` disables the listener. Default 10001.
    public var quicPort: Int?
    /// HTTPS port of the CA and node-certificate endpoint; 0 picks a free one, `nil` disables
    /// it. Default 10002.
    public var httpsPort: Int?
    /// Where the CA (`ca.crt`, `ca.key`) and the hub's server certificate (`server.crt`,
    /// `server.key`) live; created on first start.
    public var certificatesDirectory: String
    /// Names (IP addresses or DNS names) edges use to reach this hub, written into the server
    /// certificate. Default `127.0.0.1`, `::1` and `localhost`.
    public var advertiseAddresses: [String]
    /// The SQLite file of the hub's outbox (reliable messages to every node, receive marks).
    /// `nil` keeps them in memory only.
    public var outboxPath: String?
    /// Nodes the hub keeps sessions for at once (connected or holding queued messages).
    /// KubeEdge's default is 500; ours 10,000.
    public var nodeLimit: Int
    /// The template of every node's channel: limits, windows, keepalive, bounds of the node's
    /// queues. The hub sets the node ids.
    public var channel: ChannelConfiguration
    /// WebSocket upgrade path. Default `/channel`.
    public var webSocketPath: String
    /// Connections a listener holds at once. Default 12,000 (node limit plus replacements).
    public var maxConnections: Int
    /// QUIC handshakes in progress at once. Default 1,000.
    public var maxHandshakes: Int
    /// Time a new connection has to complete TLS and send its HELLO. Default 10 s.
    public var helloTimeout: Duration
    /// Validity of bootstrap tokens the hub makes. Default 24 h.
    public var tokenValidity: Duration
    /// Validity of node certificates the hub issues. Default 365 days.
    public var nodeCertificateValidity: Duration
    /// The HTTPS endpoint's limits.
    public var https: CertificateServerLimits
    /// Node events kept for a slow reader of ``CloudHub/events``; older ones are dropped
    /// (counted). Default 65,536.
    public var eventBuffer: Int
    /// What nodes may send about; see ``NodeAccessPolicy``.
    public var accessPolicy: NodeAccessPolicy

    /// Creates a configuration with the documented defaults.
    public init(
        certificatesDirectory: String, outboxPath: String?, bindAddress: String = "0.0.0.0", webSocketPort: Int? = 10000, quicPort: Int? = 10001,
        httpsPort: Int? = 10002, advertiseAddresses: [String] = ["127.0.0.1", "::1", "localhost"], nodeLimit: Int = 10_000,
        channel: ChannelConfiguration = ChannelConfiguration(localNodeID: "cloudhub", peerNodeID: "", keepaliveInterval: .seconds(15), deadPeerTimeout: .seconds(45)),
        webSocketPath: String = "/channel", maxConnections: Int = 12_000, maxHandshakes: Int = 1_000, helloTimeout: Duration = .seconds(10),
        tokenValidity: Duration = .seconds(86_400), nodeCertificateValidity: Duration = .seconds(365 * 86_400),
        https: CertificateServerLimits = CertificateServerLimits(), eventBuffer: Int = 65_536, accessPolicy: NodeAccessPolicy = NodeAccessPolicy()
    ) {
        self.certificatesDirectory = certificatesDirectory
        self.outboxPath = outboxPath
        self.bindAddress = bindAddress
        self.webSocketPort = webSocketPort
        self.quicPort = quicPort
        self.httpsPort = httpsPort
        self.advertiseAddresses = advertiseAddresses
        self.nodeLimit = nodeLimit
        self.channel = channel
        // Only the cloud opens streams (logs, exec, attach): one a node opens is refused at once
        // rather than buffered unread in cloudcore.
        self.channel.acceptsPeerStreams = false
        self.webSocketPath = webSocketPath
        self.maxConnections = maxConnections
        self.maxHandshakes = maxHandshakes
        self.helloTimeout = helloTimeout
        self.tokenValidity = tokenValidity
        self.nodeCertificateValidity = nodeCertificateValidity
        self.https = https
        self.eventBuffer = eventBuffer
        self.accessPolicy = accessPolicy
    }
}

/// Bounds of the HTTPS certificate endpoint.
public struct CertificateServerLimits: Sendable {
    /// Largest request head (request line and headers). Default 8 KiB.
    public var maxHeaderBytes: Int
    /// Largest request body (a DER CSR is a few hundred bytes). Default 16 KiB.
    public var maxBodyBytes: Int
    /// Time a client has to send its whole request. Default 10 s.
    public var requestTimeout: Duration
    /// Connections open at once. Default 256.
    public var maxConnections: Int

    /// Creates limits with the documented defaults.
    public init(maxHeaderBytes: Int = 8 << 10, maxBodyBytes: Int = 16 << 10, requestTimeout: Duration = .seconds(10), maxConnections: Int = 256) {
        self.maxHeaderBytes = maxHeaderBytes
        self.maxBodyBytes = maxBodyBytes
        self.requestTimeout = requestTimeout
        self.maxConnections = maxConnections
    }
}
