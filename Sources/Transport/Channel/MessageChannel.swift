import Logging
import NIOCore
import NIOPosix
import Synchronization

/// A session with one peer over any backend: lanes, delivery classes, credit-based backpressure,
/// acknowledgements, the SQLite outbox and resume across reconnects and restarts.
///
/// The channel outlives its connections: a backend attaches a ``ChannelLink`` when a connection
/// is up and the channel replays what the peer has not acknowledged. Sending and receiving work
/// whether or not a link is attached (best-effort messages are dropped while it is not).
public final class MessageChannel: ChannelEndpoint, LaneSource {
    /// The configuration the channel was created with.
    public let configuration: ChannelConfiguration
    let outbox: Outbox?
    let logger: Logger
    let state: Mutex<ChannelState>

    /// Creates a channel with what `outbox` held for ``ChannelConfiguration/peerNodeID`` when it
    /// was opened (no disk access: create one channel per peer and outbox).
    ///
    /// - Parameter outbox: where reliable messages and receive marks persist; `nil` keeps them in
    ///   memory only (they still survive reconnects, not restarts).
    public init(configuration: ChannelConfiguration, outbox: Outbox? = nil, logger: Logger = Logger(label: "transport.channel")) throws {
        self.configuration = configuration
        self.outbox = outbox
        var logger = logger
        logger[metadataKey: "peer"] = "\(configuration.peerNodeID)"
        self.logger = logger
        let laneCount = configuration.limits.laneCount
        var initial = ChannelState(
            send: Array(repeating: SendLane(), count: laneCount),
            receive: Array(repeating: ReceiveLane(), count: laneCount),
            localEpoch: MessageID(high: .random(in: 1 ... .max), low: .random(in: 1 ... .max)),
            remoteEpoch: .zero)
        if let outbox {
            let stored = try outbox.takeSession(peer: configuration.peerNodeID, limits: configuration.limits)
            initial.localEpoch = stored.localEpoch
            initial.remoteEpoch = stored.remoteEpoch
            for (lane, next) in stored.nextSequence where Int(lane.rawValue) < laneCount {
                initial.send[Int(lane.rawValue)].nextSequence = next
            }
            for (lane, delivered) in stored.delivered where Int(lane.rawValue) < laneCount {
                let index = Int(lane.rawValue)
                initial.receive[index].receivedUpTo = delivered
                initial.receive[index].deliveredUpTo = delivered
                initial.receive[index].persistedUpTo = delivered
                initial.receive[index].acknowledgedUpTo = delivered
            }
            for entry in stored.entries where Int(entry.lane.rawValue) < laneCount {
                let index = Int(entry.lane.rawValue)
                initial.send[index].append(OutgoingEntry(
                    sequence: entry.sequence, delivery: entry.delivery, message: entry.message,
                    size: Self.estimatedSize(of: entry.message)))
                initial.send[index].persistedUpTo = entry.sequence
            }
        }
        state = Mutex(initial)
    }

    // MARK: sending

    public func send(_ message: Message, on lane: Lane, delivery: Delivery) async throws {
        try validate(message, on: lane)
        let size = Self.estimatedSize(of: message)
        while true {
            let done = try await withUnsafeThrowingContinuation { (continuation: UnsafeContinuation<Bool, any Error>) in
                var actions = ChannelActions()
                let outcome = state.withLock { state in
                    enqueue(message, on: lane, delivery: delivery, size: size, waiter: continuation, state: &state, actions: &actions)
                }
                perform(actions)
                switch outcome {
                case .accepted, .dropped: continuation.resume(returning: true)
                case .closed: continuation.resume(throwing: TransportError.closed)
                case .waiting, .full: break
                }
            }
            if done { return }
        }
    }

    /// Sends `messages` in order on `lane`: one lock per batch and, for reliable classes, one wait
    /// for the outbox commit that holds the whole batch. Suspends while the lane or the outbox is
    /// full and continues with the rest; when it returns, every reliable message is in the outbox.
    public func send(contentsOf messages: [Message], on lane: Lane, delivery: Delivery) async throws {
        try await send(contentsOf: messages, on: lane) { _ in delivery }
    }

    /// Sends `messages` in order on `lane` like ``send(contentsOf:on:delivery:)``, each with the
    /// delivery class `delivery` gives it (a `state` key per resource, say).
    public func send(contentsOf messages: [Message], on lane: Lane, delivery: (Message) -> Delivery) async throws {
        for message in messages { try validate(message, on: lane) }
        let index = Int(lane.rawValue)
        var next = 0
        while next < messages.count {
            var accepted = 0
            let start = next
            _ = try await withUnsafeThrowingContinuation { (continuation: UnsafeContinuation<Bool, any Error>) in
                var actions = ChannelActions()
                let outcome: EnqueueOutcome = state.withLock { state in
                    var full = false
                    var reliable = false
                    while start + accepted < messages.count {
                        let message = messages[start + accepted]
                        let messageDelivery = delivery(message)
                        switch enqueue(message, on: lane, delivery: messageDelivery, size: Self.estimatedSize(of: message), waiter: nil, state: &state, actions: &actions) {
                        case .closed: return .closed
                        case .full: full = true
                        case .accepted, .dropped, .waiting:
                            accepted += 1
                            reliable = reliable || messageDelivery.isReliable
                        }
                        if full { break }
                    }
                    if reliable, outbox != nil, accepted > 0 {
                        state.persistWaiters.append(.init(lane: lane, sequence: state.send[index].nextSequence - 1, continuation: continuation))
                        return .waiting
                    }
                    if accepted == 0, full {
                        state.send[index].spaceWaiters.append(continuation)
                        return .waiting
                    }
                    return .accepted
                }
                perform(actions)
                switch outcome {
                case .closed: continuation.resume(throwing: TransportError.closed)
                case .waiting: break
                default: continuation.resume(returning: true)
                }
            }
            next += accepted
        }
    }

    public func trySend(_ message: Message, on lane: Lane, delivery: Delivery) throws -> TrySendResult {
        try validate(message, on: lane)
        var actions = ChannelActions()
        let outcome = state.withLock { state in
            enqueue(message, on: lane, delivery: delivery, size: Self.estimatedSize(of: message), waiter: nil, state: &state, actions: &actions)
        }
        perform(actions)
        switch outcome {
        case .accepted, .waiting: return .accepted
        case .dropped: return .dropped
        case .closed: throw TransportError.closed
        case .full: return .wouldBlock
        }
    }

    enum EnqueueOutcome { case accepted, dropped, closed, full, waiting }

    /// Queues a message. With a `waiter`, a full lane parks it as a space waiter and a reliable
    /// message parks it until its outbox row is committed (`.waiting`).
    private func enqueue(
        _ message: Message, on lane: Lane, delivery: Delivery, size: Int,
        waiter: UnsafeContinuation<Bool, any Error>?, state: inout ChannelState, actions: inout ChannelActions
    ) -> EnqueueOutcome {
        if state.closed { return .closed }
        let index = Int(lane.rawValue)
        if !delivery.isReliable {
            guard state.established else {
                state.counters.bestEffortDropped += 1
                return .dropped
            }
            guard state.send[index].unsentBytes < configuration.maxQueuedBytesPerLane else {
                guard let waiter else { return .full }
                state.send[index].spaceWaiters.append(waiter)
                return .waiting
            }
            state.send[index].append(OutgoingEntry(sequence: 0, delivery: delivery, message: message, size: size))
            scheduleFlushIfSendable(lane: index, state: &state, actions: &actions)
            return .accepted
        }
        guard state.totalReliableCount < configuration.maxOutboxMessages,
              state.totalReliableBytes < configuration.maxOutboxBytes
        else {
            guard let waiter else { return .full }
            state.send[index].spaceWaiters.append(waiter)
            return .waiting
        }
        let sequence = state.send[index].nextSequence
        state.send[index].nextSequence += 1
        state.send[index].append(OutgoingEntry(sequence: sequence, delivery: delivery, message: message, size: size))
        if outbox != nil {
            state.pending.appends.append(StoredEntry(lane: lane, sequence: sequence, delivery: delivery, message: message))
            actions.persist = true
            guard let waiter else { return .accepted }
            state.persistWaiters.append(.init(lane: lane, sequence: sequence, continuation: waiter))
            return .waiting
        }
        state.send[index].persistedUpTo = sequence
        scheduleFlushIfSendable(lane: index, state: &state, actions: &actions)
        return .accepted
    }

    private func validate(_ message: Message, on lane: Lane) throws {
        guard Int(lane.rawValue) < configuration.limits.laneCount, lane != .control else { throw TransportError.unknownLane(lane) }
        let limit = configuration.limits.message.maxContentLength
        guard message.content.readableBytes <= limit else {
            throw TransportError.messageTooLarge(size: message.content.readableBytes, limit: limit)
        }
    }

    static func estimatedSize(of message: Message) -> Int {
        MessageCodec.encodedHeaderLength(of: message) + message.content.readableBytes + 12
    }

    // MARK: requests

    public func request(_ message: Message, on lane: Lane = .request, timeout: Duration? = nil) async throws -> Message {
        var message = message
        message.header.sync = true
        let id = message.header.id
        let timeout = timeout ?? configuration.requestTimeout
        let timer = (configuration.timerLoop ?? NIOSingletons.posixEventLoopGroup.any()).scheduleTask(in: .nanoseconds(timeout.nanoseconds)) { [self] in
            requestTimedOut(id, after: timeout)
        }
        state.withLock { $0.requests[id] = .waiting(nil, timer) }
        do {
            try await send(message, on: lane, delivery: .reliable)
        } catch {
            timer.cancel()
            _ = state.withLock { $0.requests.removeValue(forKey: id) }
            throw error
        }
        return try await withUnsafeThrowingContinuation { (continuation: UnsafeContinuation<Message, any Error>) in
            let early: Result<Message, any Error>? = state.withLock { state in
                switch state.requests[id] {
                case .arrived(let result):
                    state.requests[id] = nil
                    return result
                case .waiting(_, let timer):
                    state.requests[id] = .waiting(continuation, timer)
                    return nil
                case nil:
                    return .failure(TransportError.closed)
                }
            }
            if let early { continuation.resume(with: early) }
        }
    }

    /// Now, on the clock of the channel's timers (``ChannelConfiguration/timerLoop``).
    func timerNow() -> NIODeadline { configuration.timerLoop?.now ?? .now() }

    private func requestTimedOut(_ id: MessageID, after timeout: Duration) {
        let waiter: UnsafeContinuation<Message, any Error>? = state.withLock { state in
            guard case .waiting(let continuation, _) = state.requests[id] else { return nil }
            if let continuation {
                state.requests[id] = nil
                return continuation
            }
            state.requests[id] = .arrived(.failure(TransportError.requestTimedOut(id, timeout)))
            return nil
        }
        waiter?.resume(throwing: TransportError.requestTimedOut(id, timeout))
    }

    // MARK: receiving

    public func messages(on lane: Lane) -> LaneMessages { LaneMessages(source: self, lane: lane) }

    /// Takes the next buffered message of `lane` without waiting; `nil` when none is buffered.
    /// With a ``MessageChannelObserver`` this is how a server drains many channels from one
    /// task: poll a lane until it returns `nil`, then wait for the next arrival event.
    public func pollMessage(on lane: Lane) -> Message? {
        let index = Int(lane.rawValue)
        guard index < configuration.limits.laneCount else { return nil }
        var actions = ChannelActions()
        let message: Message? = state.withLock { state in
            guard let entry = state.receive[index].buffer.popFirst() else { return nil }
            state.receive[index].bufferedBytes -= entry.size
            consumed(entry, lane: index, state: &state, actions: &actions)
            return entry.message
        }
        perform(actions)
        return message
    }

    /// Sets the observer of connection and arrival events (held weakly). Lanes that already
    /// hold messages are reported at once.
    public func setObserver(_ observer: any MessageChannelObserver) {
        var actions = ChannelActions()
        state.withLock { state in
            state.observer.observer = observer
            actions.observer = observer
            if state.established {
                state.announcedConnected = true
                actions.connectionEvent = true
            }
            for index in state.receive.indices where !state.receive[index].buffer.isEmpty {
                actions.available.append(Lane(rawValue: UInt8(index)))
            }
        }
        perform(actions)
    }

    func nextMessage(on lane: Lane) async -> Message? {
        let index = Int(lane.rawValue)
        guard index < configuration.limits.laneCount else { return nil }
        return await withUnsafeContinuation { (continuation: UnsafeContinuation<Message?, Never>) in
            var actions = ChannelActions()
            let immediate: Message?? = state.withLock { state in
                if let entry = state.receive[index].buffer.popFirst() {
                    state.receive[index].bufferedBytes -= entry.size
                    consumed(entry, lane: index, state: &state, actions: &actions)
                    return .some(entry.message)
                }
                if state.closed { return .some(nil) }
                state.receive[index].waiter = continuation
                return .none
            }
            perform(actions)
            if let immediate { continuation.resume(returning: immediate) }
        }
    }

    /// Book-keeping once the application has taken `entry`: credit back, delivery mark, ACK timer.
    func consumed(_ entry: IncomingEntry, lane index: Int, state: inout ChannelState, actions: inout ChannelActions) {
        state.receive[index].consumedSinceGrant += entry.size
        if state.established, let link = state.link, link.providesFlowControl {
            // The transport's window moves in small steps: it only raises a limit the transport
            // advertises when it sees fit, and a sender starved for a round trip costs more.
            if state.receive[index].consumedSinceGrant >= configuration.window(forLane: index) / 8 {
                let bytes = state.receive[index].consumedSinceGrant
                state.receive[index].consumedSinceGrant = 0
                if actions.grants == nil { actions.grants = (link, []) }
                actions.grants!.bytes.append((Lane(rawValue: UInt8(index)), bytes))
            }
        } else if state.established, state.receive[index].consumedSinceGrant >= configuration.window(forLane: index) / 2 {
            state.control.append(.credit(lane: Lane(rawValue: UInt8(index)), bytes: UInt64(state.receive[index].consumedSinceGrant)))
            state.receive[index].consumedSinceGrant = 0
            requestFlush(state: &state, actions: &actions)
        }
        guard entry.sequence > 0 else { return }
        if !configuration.lanesAcknowledgedAfterHandling.isEmpty,
           configuration.lanesAcknowledgedAfterHandling.contains(Lane(rawValue: UInt8(index))) {
            state.receive[index].awaitingHandling.append(HandlingMark(id: entry.message.header.id, sequence: entry.sequence))
            return
        }
        markDelivered(upTo: entry.sequence, count: 1, lane: index, state: &state, actions: &actions)
    }

    /// Marks a message taken from a lane in ``ChannelConfiguration/lanesAcknowledgedAfterHandling``
    /// as handled. The lane's cumulative ACK (persisted first when there is an outbox) moves over
    /// every message up to the oldest one still unhandled, so messages may be acknowledged out of
    /// order. Unknown ids, best-effort messages and other lanes are ignored.
    public func acknowledge(_ id: MessageID, on lane: Lane) {
        let index = Int(lane.rawValue)
        guard index < configuration.limits.laneCount else { return }
        var actions = ChannelActions()
        state.withLock { state in
            guard let position = state.receive[index].awaitingHandling.firstIndex(where: { $0.id == id }) else { return }
            state.receive[index].awaitingHandling[position].handled = true
            var upTo: UInt64 = 0
            var count = 0
            while let first = state.receive[index].awaitingHandling.first, first.handled {
                upTo = first.sequence
                count += 1
                state.receive[index].awaitingHandling.removeFirst()
            }
            if count > 0 { markDelivered(upTo: upTo, count: count, lane: index, state: &state, actions: &actions) }
        }
        perform(actions)
    }

    /// Reliable messages of `lane` taken but not yet acknowledged as handled.
    public func awaitingHandling(on lane: Lane) -> Int {
        let index = Int(lane.rawValue)
        guard index < configuration.limits.laneCount else { return 0 }
        return state.withLock { $0.receive[index].awaitingHandling.count }
    }

    /// Advances the delivery mark of lane `index` and schedules its ACK.
    private func markDelivered(upTo sequence: UInt64, count: Int, lane index: Int, state: inout ChannelState, actions: inout ChannelActions) {
        state.receive[index].deliveredUpTo = max(state.receive[index].deliveredUpTo, sequence)
        state.receive[index].deliveredSinceAck += count
        if state.receive[index].deliveredSinceAck >= configuration.ackBatch {
            collectDeliveryMarks(state: &state, actions: &actions)
        } else if !state.ackTimerScheduled, let link = state.link {
            state.ackTimerScheduled = true
            actions.startAckTimer = link
        }
    }

    // MARK: state

    /// Whether a connection is attached and its HELLO exchange completed.
    public var isConnected: Bool { state.withLock { $0.established } }

    /// The attached connection, if any (tests and tools).
    var currentLink: (any ChannelLink)? { state.withLock { $0.link } }

    /// Counts of what the channel did so far.
    public var counters: ChannelCounters { state.withLock { $0.counters } }

    /// The last GOAWAY the peer sent, if any.
    public var lastGoAway: GoAway? { state.withLock { $0.lastGoAway } }

    /// This side's outbox epoch (the HELLO session id).
    public var sessionID: MessageID { state.withLock { $0.localEpoch } }

    /// A snapshot of `lane`'s queues.
    public func statistics(for lane: Lane) -> LaneStatistics {
        state.withLock { state in
            let send = state.send[Int(lane.rawValue)]
            let receive = state.receive[Int(lane.rawValue)]
            return LaneStatistics(
                unsentBytes: send.unsentBytes, unacknowledged: send.reliableCount, bufferedBytes: receive.bufferedBytes,
                credit: send.credit, delivered: receive.deliveredUpTo, uncreditedBytes: receive.consumedSinceGrant)
        }
    }

    /// Waits until a connection has completed its handshake.
    public func waitUntilConnected(timeout: Duration = .seconds(10)) async throws {
        let deadline = ContinuousClock.now + timeout
        while !isConnected {
            if state.withLock({ $0.closed }) { throw TransportError.closed }
            guard ContinuousClock.now < deadline else { throw TransportError.notConnected }
            try await Task.sleep(for: .milliseconds(2))
        }
    }

    /// Closes the channel: GOAWAY to the peer, pending receive marks persisted, every waiter
    /// released (`send` throws ``TransportError/closed``, lane iterators end).
    public func close() async {
        var actions = ChannelActions()
        state.withLock { state in
            guard !state.closed else { return }
            state.closed = true
            if let link = state.link {
                actions.close = (link, GoAway(code: .normal, reason: "channel closed"))
            }
            state.link = nil
            state.established = false
            state.keepalive?.cancel()
            if state.announcedConnected {
                state.announcedConnected = false
                announce(false, state: state, actions: &actions)
            }
            for index in state.receive.indices {
                if let waiter = state.receive[index].waiter {
                    actions.consumers.append((waiter, nil))
                    state.receive[index].waiter = nil
                }
                if state.receive[index].deliveredUpTo > state.receive[index].persistedUpTo {
                    state.pending.delivered[Lane(rawValue: UInt8(index))] = state.receive[index].deliveredUpTo
                }
            }
            for index in state.send.indices {
                for waiter in state.send[index].takeSpaceWaiters() { actions.senders.append((waiter, .failure(TransportError.closed))) }
            }
            streamsClosed(state: &state, actions: &actions)
            for (id, slot) in state.requests {
                if case .waiting(let continuation, let timer) = slot {
                    if let continuation { actions.requests.append((continuation, .failure(TransportError.closed))) }
                    if let timer { actions.cancelTimers.append(timer) }
                }
                state.requests[id] = nil
            }
        }
        perform(actions)
        // Let an in-flight outbox write finish, then write what is left (persist waiters resume).
        if outbox != nil {
            while state.withLock({ $0.persisting }) { try? await Task.sleep(for: .milliseconds(1)) }
            startPersistIfNeeded()
            while state.withLock({ $0.persisting }) { try? await Task.sleep(for: .milliseconds(1)) }
        }
    }
}
