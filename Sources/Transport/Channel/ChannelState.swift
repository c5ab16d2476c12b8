import NIOCore

/// Everything a ``MessageChannel`` mutates, guarded by one lock. Methods change the state and
/// record in ``ChannelActions`` what must happen once the lock is released.
struct ChannelState {
    var send: [SendLane]
    var receive: [ReceiveLane]
    var link: (any ChannelLink)?
    /// HELLO exchanged on the current link.
    var established = false
    var localEpoch: MessageID
    var remoteEpoch: MessageID
    /// Outbox changes not yet handed to the writer.
    var pending = OutboxBatch()
    var persisting = false
    var persistWaiters: [PersistWaiter] = []
    var requests: [MessageID: RequestSlot] = [:]
    /// Frames to write ahead of messages on the next flush.
    var control: [Frame] = []
    var flushScheduled = false
    var ackTimerScheduled = false
    var closed = false
    var lastReceived = NIODeadline.now()
    var lastSent = NIODeadline.now()
    var pingCounter: UInt64 = 0
    var nextLaneToServe = 0
    var keepalive: RepeatedTask?
    var counters = ChannelCounters()
    /// The last GOAWAY the peer sent.
    var lastGoAway: GoAway?
    var observer = ObserverReference()
    /// A connection was announced to the observer and its end is not yet.
    var announcedConnected = false
    /// Byte streams.
    var streams = StreamTable()

    struct PersistWaiter {
        var lane: Lane
        var sequence: UInt64
        var continuation: UnsafeContinuation<Bool, any Error>
    }

    enum RequestSlot {
        case waiting(UnsafeContinuation<Message, any Error>?, Scheduled<Void>?)
        case arrived(Result<Message, any Error>)
    }

    var totalReliableCount: Int { send.reduce(0) { $0 + $1.reliableCount } }
    var totalReliableBytes: Int { send.reduce(0) { $0 + $1.reliableBytes } }

    /// The HELLO this side sends: its epoch, the peer epoch its marks refer to, and its marks.
    func makeHello(nodeID: String) -> Hello {
        var points: [Hello.ResumePoint] = []
        for (index, lane) in receive.enumerated() where lane.persistedUpTo > 0 {
            points.append(Hello.ResumePoint(lane: Lane(rawValue: UInt8(index)), delivered: lane.persistedUpTo))
        }
        return Hello(
            nodeID: nodeID, sessionID: localEpoch, peerSessionID: remoteEpoch, resumePoints: points,
            capabilities: ["batch", StreamTable.capability])
    }
}

/// Work decided under the lock and carried out after it is released.
struct ChannelActions {
    var flush: (any ChannelLink)?
    var persist = false
    var startAckTimer: (any ChannelLink)?
    var consumers: [(UnsafeContinuation<Message?, Never>, Message?)] = []
    var senders: [(UnsafeContinuation<Bool, any Error>, Result<Bool, any Error>)] = []
    var requests: [(UnsafeContinuation<Message, any Error>, Result<Message, any Error>)] = []
    var close: (link: any ChannelLink, goAway: GoAway?)?
    var cancelTimers: [Scheduled<Void>] = []
    /// Received bytes the consumer took, to hand back to a link that provides flow control.
    var grants: (link: any ChannelLink, bytes: [(Lane, Int)])?
    /// Observer events: `true` connected, `false` disconnected.
    var connectionEvent: Bool?
    /// Lanes whose buffer went from empty to holding messages, for the observer.
    var available: [Lane] = []
    var observer: (any MessageChannelObserver)?
    /// Byte-stream waiters to resume.
    var streamReaders: [(UnsafeContinuation<ByteBuffer?, any Error>, Result<ByteBuffer?, any Error>)] = []
    var streamWriters: [(UnsafeContinuation<Void, any Error>, Result<Void, any Error>)] = []
    var streamAcceptors: [(UnsafeContinuation<ByteStream?, Never>, ByteStream?)] = []
    /// Stream handles to release once the lock is free (their release takes it).
    var droppedStreams: [ByteStream] = []
}
