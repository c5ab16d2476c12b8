import NIOCore

/// Limits, windows and timers of a ``MessageChannel``. Every value has a documented default.
public struct ChannelConfiguration: Sendable {
    /// This side's node id, sent in HELLO.
    public var localNodeID: String
    /// The peer's node id; also the key of this channel's rows in a shared ``Outbox``.
    public var peerNodeID: String
    /// Codec limits for frames received.
    public var limits: FrameLimits
    /// Receive window per lane in bytes of MESSAGE frame bodies. Default 1 MiB.
    public var initialWindow: Int
    /// Receive window of the bulk lane, sized so that several large messages are in flight
    /// while the consumer drains one (a window of one message serialises sender and
    /// receiver). Default 4 MiB.
    public var bulkWindow: Int
    /// Bytes of not-yet-written messages a lane may queue before `send` suspends. Default 4 MiB.
    public var maxQueuedBytesPerLane: Int
    /// Unacknowledged reliable messages the channel holds before `send` suspends. Default 100,000.
    public var maxOutboxMessages: Int
    /// Unacknowledged reliable bytes the channel holds before `send` suspends. Default 256 MiB.
    public var maxOutboxBytes: Int
    /// How long delivered messages wait before their cumulative ACK is persisted and sent. Default 5 ms.
    public var ackDelay: Duration
    /// Delivered messages that trigger an ACK at once. Default 1,024.
    public var ackBatch: Int
    /// Idle time after which a PING is sent. Default 15 s (KubeEdge's edgeHub heartbeat).
    public var keepaliveInterval: Duration
    /// Silence after which the peer is declared dead and the connection closed. Default 45 s.
    public var deadPeerTimeout: Duration
    /// Content larger than this is written as its own buffer (gathered write) rather than copied
    /// into the batch buffer. Default 4 KiB.
    public var inlineContentThreshold: Int
    /// Most bytes encoded per flush before the event loop is given back. Default 1 MiB.
    public var maxBytesPerFlush: Int
    /// Default timeout of ``ChannelEndpoint/request(_:on:timeout:)``. Default 30 s.
    public var requestTimeout: Duration
    /// How long a flush requested by a sending task waits so that more messages join the batch
    /// (one syscall and TLS record for many messages). Flushes for ACK, CREDIT and replay run at
    /// once. Default 50 µs; zero flushes on the next event-loop turn.
    public var flushCoalescingDelay: Duration
    /// Lanes whose reliable messages count as delivered only when the application calls
    /// ``MessageChannel/acknowledge(_:on:)`` (after storing them, say), not when it takes them:
    /// a crash in between makes the peer send them again. Default: none.
    public var lanesAcknowledgedAfterHandling: Set<Lane> = []
    /// Receive window of each byte stream: data bytes the peer may send ahead of the reader.
    /// Default 256 KiB.
    public var streamWindow: Int = 256 << 10
    /// Bytes a byte stream's writer may queue before `write` suspends. Default 256 KiB.
    public var streamSendBuffer: Int = 256 << 10
    /// Byte streams open at once in each direction (those the peer opens beyond it are reset as
    /// refused). Default 256.
    public var maxConcurrentStreams: Int = 256
    /// Whether this side serves streams the peer opens. A side that serves none (the cloud: only
    /// it opens streams, to the nodes) refuses each at once, so that nothing the peer sends on
    /// them is held. Default `true`.
    public var acceptsPeerStreams = true
    /// The event loop whose clock runs the request timeouts and the keepalive (PING after
    /// ``keepaliveInterval`` idle, close after ``deadPeerTimeout`` silent). Default `nil`: NIO's
    /// shared loops for request timeouts and the connection's own loop for the keepalive. A test
    /// passes an `NIOAsyncTestingEventLoop` and advances its time instead of waiting.
    public var timerLoop: (any EventLoop)?

    /// Creates a configuration with the documented defaults.
    public init(
        localNodeID: String, peerNodeID: String, limits: FrameLimits = FrameLimits(),
        initialWindow: Int = 1 << 20, bulkWindow: Int = 4 << 20, maxQueuedBytesPerLane: Int = 4 << 20, maxOutboxMessages: Int = 100_000,
        maxOutboxBytes: Int = 256 << 20, ackDelay: Duration = .milliseconds(5), ackBatch: Int = 1024,
        keepaliveInterval: Duration = .seconds(15), deadPeerTimeout: Duration = .seconds(45),
        inlineContentThreshold: Int = 4096, maxBytesPerFlush: Int = 1 << 20, requestTimeout: Duration = .seconds(30),
        flushCoalescingDelay: Duration = .microseconds(50)
    ) {
        self.localNodeID = localNodeID
        self.peerNodeID = peerNodeID
        self.limits = limits
        self.initialWindow = initialWindow
        self.bulkWindow = bulkWindow
        self.maxQueuedBytesPerLane = maxQueuedBytesPerLane
        self.maxOutboxMessages = maxOutboxMessages
        self.maxOutboxBytes = maxOutboxBytes
        self.ackDelay = ackDelay
        self.ackBatch = ackBatch
        self.keepaliveInterval = keepaliveInterval
        self.deadPeerTimeout = deadPeerTimeout
        self.inlineContentThreshold = inlineContentThreshold
        self.maxBytesPerFlush = maxBytesPerFlush
        self.requestTimeout = requestTimeout
        self.flushCoalescingDelay = flushCoalescingDelay
    }
}

extension ChannelConfiguration {
    /// The receive window of the lane at `index`.
    func window(forLane index: Int) -> Int {
        index == Int(Lane.bulk.rawValue) ? bulkWindow : initialWindow
    }
}
