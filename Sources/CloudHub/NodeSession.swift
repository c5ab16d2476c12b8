import NIOCore
import Synchronization
import Transport

/// One edge node as the hub holds it: the node's channel (which outlives connections and holds
/// the node's bounded queues and its outbox rows), how it last connected, and its refusals.
final class NodeSession: MessageChannelObserver {
    /// The node's name, from its certificate.
    let node: String
    let channel: MessageChannel
    private let inbound: InboundQueue
    private let events: NodeEventSink
    private let connection = Mutex<ConnectionInfo>(ConnectionInfo())

    struct ConnectionInfo {
        var backend: TransportBackend?
        var remoteAddress: SocketAddress?
        var online = false
        var refusals = 0
        var lastRefusalLog: ContinuousClock.Instant?
    }

    init(node: String, channel: MessageChannel, inbound: InboundQueue, events: NodeEventSink) {
        self.node = node
        self.channel = channel
        self.inbound = inbound
        self.events = events
    }

    /// Records the connection a resolver is about to attach (its backend and address).
    func connecting(_ request: SessionRequest) {
        connection.withLock {
            $0.backend = request.backend
            $0.remoteAddress = request.remoteAddress
        }
    }

    var isOnline: Bool { connection.withLock { $0.online } }
    var backend: TransportBackend? { connection.withLock { $0.online ? $0.backend : nil } }

    /// Counts a refused message; returns whether to log it (the first, then at most every 10 s).
    func countRefusal() -> (shouldLog: Bool, count: Int) {
        connection.withLock { info in
            info.refusals += 1
            let now = ContinuousClock.now
            if let last = info.lastRefusalLog, now - last < .seconds(10) { return (false, info.refusals) }
            info.lastRefusalLog = now
            return (true, info.refusals)
        }
    }

    // MARK: MessageChannelObserver

    func channelConnected(_ channel: MessageChannel) {
        let info = connection.withLock { info in
            info.online = true
            return info
        }
        events.emit(.online(node: node, backend: info.backend ?? .quic, remoteAddress: info.remoteAddress))
    }

    func channelDisconnected(_ channel: MessageChannel) {
        connection.withLock { $0.online = false }
        events.emit(.offline(node: node))
    }

    func channel(_ channel: MessageChannel, hasMessagesOn lane: Lane) {
        inbound.markReady(self, lane: lane)
    }
}

/// A node coming or going, for the layers above the hub.
public enum NodeEvent: Sendable, Equatable {
    /// The node completed a connection (and none was established before it).
    case online(node: String, backend: TransportBackend, remoteAddress: SocketAddress?)
    /// The node's connection ended and no newer one replaced it.
    case offline(node: String)

    /// The node the event is about.
    public var node: String {
        switch self {
        case .online(let node, _, _), .offline(let node): node
        }
    }
}

/// Where sessions send their events: a bounded stream that drops the oldest (and counts them)
/// when its reader falls behind.
final class NodeEventSink: Sendable {
    let stream: AsyncStream<NodeEvent>
    private let continuation: AsyncStream<NodeEvent>.Continuation
    private let dropped = Atomic<Int>(0)

    init(buffer: Int) {
        (stream, continuation) = AsyncStream.makeStream(of: NodeEvent.self, bufferingPolicy: .bufferingNewest(buffer))
    }

    func emit(_ event: NodeEvent) {
        if case .dropped = continuation.yield(event) { dropped.add(1, ordering: .relaxed) }
    }

    var droppedCount: Int { dropped.load(ordering: .relaxed) }

    func finish() { continuation.finish() }
}
