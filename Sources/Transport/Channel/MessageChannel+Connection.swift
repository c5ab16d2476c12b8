import NIOCore

extension MessageChannel {
    /// Attaches a client-side connection: sends HELLO at once; the session is established when
    /// the peer's HELLO arrives. Call on `link.eventLoop`.
    public func attachAsClient(_ link: any ChannelLink) {
        var actions = ChannelActions()
        state.withLock { state in
            guard beginAttach(link, state: &state, actions: &actions) else { return }
            state.streams.nextLocal = 1
            state.control = [.hello(state.makeHello(nodeID: configuration.localNodeID))]
            requestFlush(state: &state, actions: &actions)
        }
        perform(actions)
        startKeepalive(on: link)
    }

    /// Attaches a server-side connection whose first frame was `hello`: answers with this side's
    /// HELLO and credits, and replays what the peer has not acknowledged. Call on `link.eventLoop`.
    public func attachAsServer(_ link: any ChannelLink, hello: Hello) {
        var actions = ChannelActions()
        state.withLock { state in
            guard beginAttach(link, state: &state, actions: &actions) else { return }
            state.streams.nextLocal = 2
            guard accept(hello, state: &state, actions: &actions) else { return }
            state.control.insert(.hello(state.makeHello(nodeID: configuration.localNodeID)), at: 0)
            requestFlush(state: &state, actions: &actions)
        }
        perform(actions)
        startKeepalive(on: link)
    }

    /// The connection under `link` ended. Best-effort messages queued on it are dropped (counted);
    /// reliable ones wait for the next link.
    public func detach(_ link: any ChannelLink) {
        var actions = ChannelActions()
        state.withLock { state in
            guard let current = state.link, current === link else { return }
            connectionEnded(state: &state, actions: &actions)
        }
        perform(actions)
    }

    /// Bytes arrived on `link`. With `wholeFrames` (message-oriented backends such as WebSocket)
    /// a partial frame at the end is a protocol error; otherwise the caller keeps the remainder
    /// in `buffer` and calls again with more. A malformed frame closes the link with GOAWAY.
    public func receive(_ buffer: inout ByteBuffer, from link: any ChannelLink, wholeFrames: Bool) {
        var frames: [(Frame, Int)] = []
        // Small messages are a few hundred bytes: one allocation for the whole read.
        frames.reserveCapacity(min(buffer.readableBytes / 128 + 1, 4096))
        var failure: WireError?
        // CREDIT counts a frame's body `length`, whatever width its varint had; a transport
        // with its own flow control counts every byte of the frame.
        let countsWholeFrames = link.providesFlowControl
        do {
            while buffer.readableBytes > 0 {
                let start = buffer.readerIndex
                let lengthByte = buffer.getInteger(at: start + 2, as: UInt8.self) ?? 0
                guard let frame = try FrameCodec.decode(from: &buffer, limits: configuration.limits) else {
                    if wholeFrames { failure = .truncated(field: "frame") }
                    break
                }
                let lengthWidth = 1 << Int(lengthByte >> 6)
                frames.append((frame, buffer.readerIndex - start - (countsWholeFrames ? 0 : 2 + lengthWidth)))
            }
        } catch {
            failure = error
        }
        var actions = ChannelActions()
        state.withLock { state in
            guard let current = state.link, current === link else { return }
            state.lastReceived = timerNow()
            for (frame, length) in frames {
                handle(frame, bodyLength: length, state: &state, actions: &actions)
                if state.link == nil { return }
            }
            if let failure {
                refuse(failure, state: &state, actions: &actions)
            }
        }
        perform(actions)
    }

    /// The link can take writes again.
    public func linkBecameWritable(_ link: any ChannelLink) {
        var actions = ChannelActions()
        state.withLock { state in
            guard let current = state.link, current === link else { return }
            requestFlush(state: &state, actions: &actions)
        }
        perform(actions)
    }

    // MARK: frame handling (under the lock)

    private func handle(_ frame: Frame, bodyLength: Int, state: inout ChannelState, actions: inout ChannelActions) {
        switch frame {
        case .message(let body):
            guard state.established else {
                return protocolViolation("MESSAGE before HELLO", state: &state, actions: &actions)
            }
            receiveMessage(body, size: bodyLength, state: &state, actions: &actions)
        case .ack(let lane, let sequence):
            let index = Int(lane.rawValue)
            guard sequence < state.send[index].nextSequence else {
                return protocolViolation("ACK \(sequence) on \(lane) beyond the last sequence sent", state: &state, actions: &actions)
            }
            state.send[index].acknowledge(upTo: sequence)
            if outbox != nil {
                state.pending.acknowledged[lane] = max(state.pending.acknowledged[lane] ?? 0, sequence)
                actions.persist = true
            }
            for waiter in state.send[index].takeSpaceWaiters() { actions.senders.append((waiter, .success(false))) }
        case .credit(let lane, let bytes):
            if let link = state.link, link.providesFlowControl {
                return protocolViolation("CREDIT on a transport that has its own flow control", state: &state, actions: &actions)
            }
            let index = Int(lane.rawValue)
            let (sum, overflow) = state.send[index].credit.addingReportingOverflow(Int(clamping: bytes))
            guard !overflow, sum <= Int(UInt32.max) * 16 else {
                return protocolViolation("CREDIT overflow on \(lane)", state: &state, actions: &actions)
            }
            state.send[index].credit = sum
            scheduleFlushIfSendable(lane: index, state: &state, actions: &actions)
        case .ping(let value):
            state.control.append(.pong(value))
            requestFlush(state: &state, actions: &actions)
        case .pong:
            state.counters.pongsReceived += 1
        case .goAway(let goAway):
            logger.info("peer went away", metadata: ["code": "\(goAway.code)", "reason": "\(goAway.reason)"])
            state.lastGoAway = goAway
            if let link = state.link { actions.close = (link, nil) }
            connectionEnded(state: &state, actions: &actions)
        case .hello(let hello):
            guard !state.established else {
                return protocolViolation("a second HELLO on one connection", state: &state, actions: &actions)
            }
            guard accept(hello, state: &state, actions: &actions) else { return }
            requestFlush(state: &state, actions: &actions)
        case .streamOpen, .streamData, .streamWindow, .streamFinish, .streamReset:
            guard state.established else {
                return protocolViolation("\(frame.type) before HELLO", state: &state, actions: &actions)
            }
            handleStreamFrame(frame, state: &state, actions: &actions)
        }
    }

    private func receiveMessage(_ body: MessageFrame, size: Int, state: inout ChannelState, actions: inout ChannelActions) {
        let index = Int(body.lane.rawValue)
        state.counters.messagesReceived += 1
        let window = configuration.window(forLane: index)
        if state.receive[index].bufferedBytes > window * 2 + configuration.limits.maxFrameLength {
            return refuse(
                .limitExceeded(
                    field: "lane \(body.lane) receive buffer", value: UInt64(state.receive[index].bufferedBytes),
                    limit: window, limitName: index == Int(Lane.bulk.rawValue) ? "bulkWindow" : "initialWindow"),
                state: &state, actions: &actions)
        }
        if body.sequence > 0 {
            if body.sequence <= state.receive[index].receivedUpTo {
                state.counters.duplicatesDropped += 1
                consumed(IncomingEntry(sequence: 0, message: body.message, size: size), lane: index, state: &state, actions: &actions)
                return
            }
            state.receive[index].receivedUpTo = body.sequence
        }
        let entry = IncomingEntry(sequence: body.sequence, message: body.message, size: size)
        if let parent = body.message.header.parentID, case .waiting(let continuation, let timer)? = state.requests[parent] {
            consumed(entry, lane: index, state: &state, actions: &actions)
            if let timer { actions.cancelTimers.append(timer) }
            if let continuation {
                state.requests[parent] = nil
                actions.requests.append((continuation, .success(body.message)))
            } else {
                state.requests[parent] = .arrived(.success(body.message))
            }
            return
        }
        if let waiter = state.receive[index].waiter, state.receive[index].buffer.isEmpty {
            state.receive[index].waiter = nil
            consumed(entry, lane: index, state: &state, actions: &actions)
            actions.consumers.append((waiter, body.message))
            return
        }
        if state.receive[index].buffer.isEmpty, let observer = state.observer.observer {
            actions.observer = observer
            actions.available.append(Lane(rawValue: UInt8(index)))
        }
        state.receive[index].buffer.append(entry)
        state.receive[index].bufferedBytes += size
    }

    /// Applies the peer's HELLO: version, epochs, acknowledgements from its resume points,
    /// replay of the rest, and initial credit. Returns `false` if the HELLO was refused.
    func accept(_ hello: Hello, state: inout ChannelState, actions: inout ChannelActions) -> Bool {
        guard hello.version == Hello.currentVersion else {
            refuse(GoAway(code: .unsupportedVersion, reason: "protocol version \(hello.version) is not supported; this side speaks \(Hello.currentVersion)"),
                   state: &state, actions: &actions)
            return false
        }
        guard hello.nodeID == configuration.peerNodeID else {
            refuse(GoAway(code: .unauthorized, reason: "expected node \(configuration.peerNodeID), HELLO says \(hello.nodeID)"),
                   state: &state, actions: &actions)
            return false
        }
        state.streams.peerSupportsStreams = hello.capabilities.contains(StreamTable.capability)
        if hello.sessionID != state.remoteEpoch {
            logger.info("peer session changed", metadata: ["session": "\(hello.sessionID)"])
            state.remoteEpoch = hello.sessionID
            if outbox != nil { state.pending.remoteEpoch = hello.sessionID; actions.persist = true }
            state.pending.delivered = [:]
            for index in state.receive.indices {
                state.receive[index].receivedUpTo = 0
                state.receive[index].deliveredUpTo = 0
                state.receive[index].persistedUpTo = 0
                state.receive[index].acknowledgedUpTo = 0
                state.receive[index].deliveredSinceAck = 0
                state.receive[index].awaitingHandling.removeAll()
                for position in state.receive[index].buffer.indices { state.receive[index].buffer[position].sequence = 0 }
            }
        }
        if hello.peerSessionID == state.localEpoch {
            for point in hello.resumePoints where Int(point.lane.rawValue) < state.send.count {
                let index = Int(point.lane.rawValue)
                let acknowledged = min(point.delivered, state.send[index].nextSequence - 1)
                state.send[index].sentCount = state.send[index].queue.count
                state.send[index].acknowledge(upTo: acknowledged)
                state.send[index].sentCount = 0
                if outbox != nil, acknowledged > 0 {
                    state.pending.acknowledged[point.lane] = max(state.pending.acknowledged[point.lane] ?? 0, acknowledged)
                    actions.persist = true
                }
            }
        }
        for index in state.send.indices {
            state.counters.replayed += state.send[index].queue.count
            for waiter in state.send[index].takeSpaceWaiters() { actions.senders.append((waiter, .success(false))) }
        }
        for index in 1..<state.receive.count {
            state.receive[index].consumedSinceGrant = 0
        }
        if let link = state.link, link.providesFlowControl {
            // The transport's stream windows bound what may be sent; the link's send allowance
            // applies them.
            for index in state.send.indices { state.send[index].credit = Self.unlimitedCredit }
        } else {
            for index in 1..<state.receive.count {
                state.control.append(.credit(lane: Lane(rawValue: UInt8(index)), bytes: UInt64(configuration.window(forLane: index))))
            }
        }
        state.established = true
        state.counters.handshakes += 1
        if !state.announcedConnected {
            state.announcedConnected = true
            announce(true, state: state, actions: &actions)
        }
        return true
    }

    /// Makes `link` the current connection (closing an older one as replaced); on a closed
    /// channel refuses it instead and returns `false`.
    private func beginAttach(_ link: any ChannelLink, state: inout ChannelState, actions: inout ChannelActions) -> Bool {
        guard !state.closed else {
            actions.close = (link, GoAway(code: .shuttingDown, reason: "channel closed"))
            return false
        }
        replaceLink(with: link, state: &state, actions: &actions)
        return true
    }

    private func replaceLink(with link: any ChannelLink, state: inout ChannelState, actions: inout ChannelActions) {
        if let old = state.link, old !== link {
            actions.close = (old, GoAway(code: .replaced, reason: "a newer connection replaced this one"))
            connectionEnded(state: &state, actions: &actions, replaced: true)
        }
        state.link = link
        state.established = false
        state.control = []
        // A flush still pending is for the old link; the new one needs its own.
        state.flushScheduled = false
        state.lastReceived = timerNow()
        state.lastSent = timerNow()
    }

    /// The current link is gone. Unless a newer link `replaced` it, an announced connection
    /// ends for the observer.
    func connectionEnded(state: inout ChannelState, actions: inout ChannelActions, replaced: Bool = false) {
        if !replaced, state.announcedConnected {
            state.announcedConnected = false
            announce(false, state: state, actions: &actions)
        }
        state.link = nil
        state.established = false
        state.control = []
        state.keepalive?.cancel()
        state.keepalive = nil
        streamsEnded("the connection to \(configuration.peerNodeID) was lost", state: &state, actions: &actions)
        for index in state.send.indices {
            state.counters.bestEffortDropped += state.send[index].connectionLost()
            for waiter in state.send[index].takeSpaceWaiters() { actions.senders.append((waiter, .success(false))) }
        }
    }

    func announce(_ connected: Bool, state: ChannelState, actions: inout ChannelActions) {
        guard let observer = state.observer.observer else { return }
        actions.observer = observer
        actions.connectionEvent = connected
    }

    /// Send credit on a link whose transport does the flow control: never the limit.
    static let unlimitedCredit = Int(UInt32.max) * 8

    private func protocolViolation(_ reason: String, state: inout ChannelState, actions: inout ChannelActions) {
        refuse(GoAway(code: .protocolError, reason: reason), state: &state, actions: &actions)
    }

    private func refuse(_ error: WireError, state: inout ChannelState, actions: inout ChannelActions) {
        refuse(GoAway(refusing: error), state: &state, actions: &actions)
    }

    /// Closes the current link with `goAway` because the peer broke the protocol or a limit.
    func refuse(_ goAway: GoAway, state: inout ChannelState, actions: inout ChannelActions) {
        state.counters.protocolErrors += 1
        logger.warning("refusing peer input", metadata: ["code": "\(goAway.code)", "reason": "\(goAway.reason)"])
        if let link = state.link { actions.close = (link, goAway) }
        connectionEnded(state: &state, actions: &actions)
    }

    // MARK: keepalive

    private func startKeepalive(on link: any ChannelLink) {
        let interval = min(configuration.keepaliveInterval, configuration.deadPeerTimeout / 3)
        let period = TimeAmount.nanoseconds(max(1_000_000, interval.nanoseconds / 2))
        let task = (configuration.timerLoop ?? link.eventLoop).scheduleRepeatedTask(initialDelay: period, delay: period) { [weak self, weak link] task in
            guard let self, let link else { return task.cancel() }
            self.keepaliveTick(link: link, task: task)
        }
        let stale: RepeatedTask? = state.withLock { state in
            guard let current = state.link, current === link else { return task }
            let old = state.keepalive
            state.keepalive = task
            return old
        }
        stale?.cancel()
    }

    private func keepaliveTick(link: any ChannelLink, task: RepeatedTask) {
        var actions = ChannelActions()
        state.withLock { state in
            guard let current = state.link, current === link else { return task.cancel() }
            let now = timerNow()
            if now - state.lastReceived > .nanoseconds(configuration.deadPeerTimeout.nanoseconds) {
                state.counters.protocolErrors += 1
                logger.warning("peer is silent beyond the dead-peer timeout; closing the connection")
                actions.close = (link, GoAway(code: .deadPeer, reason: "no frame received for \(configuration.deadPeerTimeout)"))
                connectionEnded(state: &state, actions: &actions)
            } else if now - state.lastSent >= .nanoseconds(configuration.keepaliveInterval.nanoseconds) {
                state.pingCounter += 1
                state.counters.pingsSent += 1
                state.control.append(.ping(state.pingCounter))
                requestFlush(state: &state, actions: &actions)
            }
        }
        perform(actions)
    }
}

extension Duration {
    /// The duration in whole nanoseconds (saturating).
    var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        let (whole, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        return overflow ? .max : whole + attoseconds / 1_000_000_000
    }
}
