import NIOCore

extension MessageChannel {
    // MARK: opening and accepting

    /// Opens a byte stream to the peer; `header` says what it is for (the peer's handler reads
    /// it from ``ByteStream/header``). The stream lives on the current connection.
    ///
    /// - Throws: ``TransportError/notConnected`` without a connection,
    ///   ``TransportError/streamsUnsupported`` if the peer did not announce streams,
    ///   ``TransportError/streamLimitReached(_:)`` at ``ChannelConfiguration/maxConcurrentStreams``.
    public func openStream(header: ByteBuffer) throws -> ByteStream {
        let limit = configuration.limits.maxStreamOpenLength
        guard header.readableBytes <= limit else { throw TransportError.messageTooLarge(size: header.readableBytes, limit: limit) }
        var actions = ChannelActions()
        let result: Result<ByteStream, TransportError> = state.withLock { state in
            if state.closed { return .failure(.closed) }
            guard state.established else { return .failure(.notConnected) }
            guard state.streams.peerSupportsStreams else { return .failure(.streamsUnsupported) }
            guard state.streams.liveLocal < configuration.maxConcurrentStreams else {
                return .failure(.streamLimitReached(configuration.maxConcurrentStreams))
            }
            let wire = state.streams.nextLocal
            state.streams.nextLocal += 2
            let token = state.streams.nextToken
            state.streams.nextToken += 1
            state.streams.slots[token] = StreamSlot(wire: wire, openedLocally: true, credit: 0, windowLeft: configuration.streamWindow)
            state.streams.byWire[wire] = token
            state.streams.liveLocal += 1
            state.counters.streamsOpened += 1
            state.control.append(.streamOpen(StreamOpen(stream: wire, window: UInt64(configuration.streamWindow), header: header)))
            requestFlush(state: &state, actions: &actions)
            return .success(ByteStream(channel: self, token: token, header: header))
        }
        perform(actions)
        return try result.get()
    }

    /// The streams the peer opens, in order. Those it opens while nobody iterates wait here
    /// (they count against ``ChannelConfiguration/maxConcurrentStreams``).
    public var incomingStreams: IncomingStreams { IncomingStreams(channel: self) }

    /// Byte streams open on the current connection (in both directions), and slots held for
    /// handles not yet released.
    public var streamStatistics: (open: Int, slots: Int) {
        state.withLock { ($0.streams.liveLocal + $0.streams.livePeer, $0.streams.slots.count) }
    }

    /// The next stream the peer opened; `nil` once the channel closed or the task is cancelled.
    func acceptStream() async -> ByteStream? {
        await withTaskCancellationHandler {
            await withUnsafeContinuation { (continuation: UnsafeContinuation<ByteStream?, Never>) in
                let immediate: ByteStream?? = state.withLock { state in
                    if let stream = state.streams.incoming.popFirst() { return .some(stream) }
                    if state.closed || Task.isCancelled { return .some(nil) }
                    state.streams.acceptWaiter = continuation
                    return .none
                }
                if let immediate { continuation.resume(returning: immediate) }
            }
        } onCancel: {
            let waiter = state.withLock { state in
                defer { state.streams.acceptWaiter = nil }
                return state.streams.acceptWaiter
            }
            waiter?.resume(returning: nil)
        }
    }

    // MARK: handle operations

    /// The next chunk; a cancelled reader throws `CancellationError` (the stream stays open).
    func readStream(_ token: UInt64) async throws -> ByteBuffer? {
        try await withTaskCancellationHandler {
            try await waitForChunk(token)
        } onCancel: {
            let waiter = state.withLock { state -> UnsafeContinuation<ByteBuffer?, any Error>? in
                guard let waiter = state.streams.slots[token]?.readWaiter else { return nil }
                state.streams.slots[token]?.readWaiter = nil
                return waiter
            }
            waiter?.resume(throwing: CancellationError())
        }
    }

    private func waitForChunk(_ token: UInt64) async throws -> ByteBuffer? {
        try await withUnsafeThrowingContinuation { (continuation: UnsafeContinuation<ByteBuffer?, any Error>) in
            var actions = ChannelActions()
            let immediate: Result<ByteBuffer?, any Error>? = state.withLock { state in
                guard var slot = state.streams.slots[token] else { return .failure(TransportError.streamAborted("the stream is gone")) }
                defer { state.streams.slots[token] = slot }
                if let chunk = slot.received.popFirst() {
                    slot.receivedBytes -= chunk.readableBytes
                    consumedStreamBytes(chunk.readableBytes, slot: &slot, state: &state, actions: &actions)
                    return .success(chunk)
                }
                if let failure = slot.failure { return .failure(failure) }
                if slot.peerFinished { return .success(nil) }
                if Task.isCancelled { return .failure(CancellationError()) }
                slot.readWaiter = continuation
                return nil
            }
            perform(actions)
            if let immediate { continuation.resume(with: immediate) }
        }
    }

    /// Queues `data`; a writer cancelled while it waits for room throws `CancellationError`
    /// (its bytes stay queued).
    func writeStream(_ token: UInt64, _ data: ByteBuffer) async throws {
        guard data.readableBytes > 0 else { return }
        try await withTaskCancellationHandler {
            try await queue(data, on: token)
        } onCancel: {
            let waiter = state.withLock { state -> UnsafeContinuation<Void, any Error>? in
                guard let waiter = state.streams.slots[token]?.writeWaiter else { return nil }
                state.streams.slots[token]?.writeWaiter = nil
                return waiter
            }
            waiter?.resume(throwing: CancellationError())
        }
    }

    private func queue(_ data: ByteBuffer, on token: UInt64) async throws {
        try await withUnsafeThrowingContinuation { (continuation: UnsafeContinuation<Void, any Error>) in
            var actions = ChannelActions()
            let immediate: Result<Void, any Error>? = state.withLock { state in
                guard var slot = state.streams.slots[token] else { return .failure(TransportError.streamAborted("the stream is gone")) }
                defer { state.streams.slots[token] = slot }
                if let failure = slot.failure { return .failure(failure) }
                guard !slot.finishRequested, !slot.closedOnWire else {
                    return .failure(TransportError.streamAborted("this side already finished writing"))
                }
                slot.sendQueue.append(data)
                slot.queuedBytes += data.readableBytes
                listSendable(token, slot: &slot, state: &state, actions: &actions)
                guard slot.queuedBytes > configuration.streamSendBuffer else { return .success(()) }
                if Task.isCancelled { return .failure(CancellationError()) }
                slot.writeWaiter = continuation
                return nil
            }
            perform(actions)
            if let immediate { continuation.resume(with: immediate) }
        }
    }

    func finishStream(_ token: UInt64) {
        var actions = ChannelActions()
        state.withLock { state in
            guard var slot = state.streams.slots[token], !slot.finishRequested, !slot.closedOnWire else { return }
            slot.finishRequested = true
            listSendable(token, slot: &slot, state: &state, actions: &actions)
            state.streams.slots[token] = slot
        }
        perform(actions)
    }

    func resetStream(_ token: UInt64, code: StreamResetCode, reason: String) {
        var actions = ChannelActions()
        state.withLock { state in
            guard let slot = state.streams.slots[token], !slot.closedOnWire else { return }
            let reason = String(decoding: reason.utf8.prefix(configuration.limits.maxGoAwayReasonLength - 3), as: UTF8.self)
            sendReset(slot.wire, code: code, reason: reason, state: &state, actions: &actions)
            closeSlot(token, failure: TransportError.streamAborted("reset by this side (\(code)): \(reason)"), state: &state, actions: &actions)
        }
        perform(actions)
    }

    func streamHandleReleased(_ token: UInt64) {
        var actions = ChannelActions()
        state.withLock { state in
            guard var slot = state.streams.slots[token] else { return }
            slot.handleReleased = true
            if slot.finishRequested, !slot.closedOnWire {
                // What was written and the FIN still go out, and the peer reads them at its
                // pace (a reset would discard what it has not read). Nobody reads here any
                // more: what the peer still sends is dropped (and its window handed back)
                // until its FIN, or its reset, ends the stream.
                slot.received.removeAll()
                slot.receivedBytes = 0
                state.streams.slots[token] = slot
                return
            }
            state.streams.slots[token] = slot
            if !slot.closedOnWire {
                sendReset(slot.wire, code: .cancelled, reason: "the stream's handle was released", state: &state, actions: &actions)
                closeSlot(token, failure: TransportError.streamAborted("released"), state: &state, actions: &actions)
            } else {
                state.streams.slots[token] = nil
            }
        }
        perform(actions)
    }

    // MARK: frames from the peer (under the lock)

    /// Applies a stream frame the peer sent; a frame that breaks the protocol ends the connection.
    func handleStreamFrame(_ frame: Frame, state: inout ChannelState, actions: inout ChannelActions) {
        switch frame {
        case .streamOpen(let open):
            let peerIsClient = state.streams.nextLocal & 1 == 0
            guard StreamTable.isClientNumber(open.stream) == peerIsClient, open.stream > state.streams.highestPeer else {
                return refuse(GoAway(code: .protocolError, reason: "STREAM_OPEN \(open.stream): not a new stream number of the peer"), state: &state, actions: &actions)
            }
            state.streams.highestPeer = open.stream
            guard configuration.acceptsPeerStreams else {
                state.counters.streamsRefused += 1
                return sendReset(open.stream, code: .refused, reason: "\(configuration.localNodeID) serves no streams opened by its peer", state: &state, actions: &actions)
            }
            guard state.streams.livePeer < configuration.maxConcurrentStreams else {
                state.counters.streamsRefused += 1
                return sendReset(
                    open.stream, code: .refused,
                    reason: "\(state.streams.livePeer) streams are open; the limit is maxConcurrentStreams=\(configuration.maxConcurrentStreams)",
                    state: &state, actions: &actions)
            }
            let token = state.streams.nextToken
            state.streams.nextToken += 1
            state.streams.slots[token] = StreamSlot(
                wire: open.stream, openedLocally: false, credit: Int(clamping: min(open.window, 1 << 40)),
                windowLeft: configuration.streamWindow)
            state.streams.byWire[open.stream] = token
            state.streams.livePeer += 1
            state.counters.streamsAccepted += 1
            state.control.append(.streamWindow(stream: open.stream, bytes: UInt64(configuration.streamWindow)))
            requestFlush(state: &state, actions: &actions)
            let stream = ByteStream(channel: self, token: token, header: open.header)
            if let waiter = state.streams.acceptWaiter {
                state.streams.acceptWaiter = nil
                actions.streamAcceptors.append((waiter, stream))
            } else {
                state.streams.incoming.append(stream)
            }
        case .streamData(let wire, let data):
            guard let token = liveToken(wire, frame: "STREAM_DATA", state: &state, actions: &actions),
                  var slot = state.streams.slots[token] else { return }
            let count = data.readableBytes
            guard !slot.peerFinished else {
                return violation(token, wire, code: .protocolError, reason: "STREAM_DATA after the peer's STREAM_FINISH", state: &state, actions: &actions)
            }
            guard count <= slot.windowLeft else {
                return violation(
                    token, wire, code: .flowControl,
                    reason: "\(count) data bytes with \(slot.windowLeft) left in the stream window (streamWindow=\(configuration.streamWindow))",
                    state: &state, actions: &actions)
            }
            guard count > 0 else { return }
            slot.windowLeft -= count
            state.counters.streamBytesReceived += count
            if let waiter = slot.readWaiter {
                slot.readWaiter = nil
                consumedStreamBytes(count, slot: &slot, state: &state, actions: &actions)
                actions.streamReaders.append((waiter, .success(data)))
            } else if slot.handleReleased {
                consumedStreamBytes(count, slot: &slot, state: &state, actions: &actions)
            } else {
                slot.received.append(data)
                slot.receivedBytes += count
            }
            state.streams.slots[token] = slot
        case .streamWindow(let wire, let bytes):
            guard let token = liveToken(wire, frame: "STREAM_WINDOW", state: &state, actions: &actions),
                  var slot = state.streams.slots[token] else { return }
            let (sum, overflow) = slot.credit.addingReportingOverflow(Int(clamping: bytes))
            guard !overflow, sum <= 1 << 40 else {
                return violation(token, wire, code: .flowControl, reason: "STREAM_WINDOW overflows the stream's credit", state: &state, actions: &actions)
            }
            slot.credit = sum
            listSendable(token, slot: &slot, state: &state, actions: &actions)
            state.streams.slots[token] = slot
        case .streamFinish(let wire):
            guard let token = liveToken(wire, frame: "STREAM_FINISH", state: &state, actions: &actions),
                  var slot = state.streams.slots[token] else { return }
            guard !slot.peerFinished else {
                return violation(token, wire, code: .protocolError, reason: "a second STREAM_FINISH", state: &state, actions: &actions)
            }
            slot.peerFinished = true
            if let waiter = slot.readWaiter {
                slot.readWaiter = nil
                actions.streamReaders.append((waiter, .success(nil)))
            }
            state.streams.slots[token] = slot
            if slot.finishSent { closeSlot(token, failure: nil, state: &state, actions: &actions) }
        case .streamReset(let reset):
            guard let token = liveToken(reset.stream, frame: "STREAM_RESET", state: &state, actions: &actions) else { return }
            closeSlot(token, failure: TransportError.streamReset(reset), state: &state, actions: &actions)
        default:
            break
        }
    }

    /// The token of live stream `wire`; nil for a stream that is over (late frames are ignored)
    /// and, after refusing the connection, for one that never existed.
    private func liveToken(_ wire: UInt64, frame: String, state: inout ChannelState, actions: inout ChannelActions) -> UInt64? {
        if let token = state.streams.byWire[wire] { return token }
        let localIsClient = state.streams.nextLocal & 1 == 1
        let known = StreamTable.isClientNumber(wire) == localIsClient ? wire < state.streams.nextLocal : wire <= state.streams.highestPeer
        if !known {
            refuse(GoAway(code: .protocolError, reason: "\(frame) for stream \(wire), which was never opened"), state: &state, actions: &actions)
        }
        return nil
    }

    /// The peer broke a stream's rules: reset it (counted), keep the connection.
    private func violation(_ token: UInt64, _ wire: UInt64, code: StreamResetCode, reason: String, state: inout ChannelState, actions: inout ChannelActions) {
        state.counters.streamViolations += 1
        logger.warning("resetting a byte stream the peer misused", metadata: ["stream": "\(wire)", "reason": "\(reason)"])
        sendReset(wire, code: code, reason: reason, state: &state, actions: &actions)
        closeSlot(token, failure: TransportError.streamAborted("the peer broke the stream's rules: \(reason)"), state: &state, actions: &actions)
    }

    // MARK: book-keeping (under the lock)

    /// The reader took `count` bytes: hand the window back once half of it is used.
    private func consumedStreamBytes(_ count: Int, slot: inout StreamSlot, state: inout ChannelState, actions: inout ChannelActions) {
        slot.consumedSinceGrant += count
        guard !slot.peerFinished, !slot.closedOnWire, state.established,
              slot.consumedSinceGrant >= configuration.streamWindow / 2 else { return }
        state.control.append(.streamWindow(stream: slot.wire, bytes: UInt64(slot.consumedSinceGrant)))
        slot.windowLeft += slot.consumedSinceGrant
        slot.consumedSinceGrant = 0
        requestFlush(state: &state, actions: &actions)
    }

    private func listSendable(_ token: UInt64, slot: inout StreamSlot, state: inout ChannelState, actions: inout ChannelActions) {
        guard slot.hasSendable, state.established else { return }
        if !slot.listed {
            slot.listed = true
            state.streams.sendable.append(token)
        }
        requestFlush(state: &state, actions: &actions)
    }

    private func sendReset(_ wire: UInt64, code: StreamResetCode, reason: String, state: inout ChannelState, actions: inout ChannelActions) {
        guard state.established else { return }
        state.control.append(.streamReset(StreamReset(stream: wire, code: code, reason: reason)))
        requestFlush(state: &state, actions: &actions)
    }

    /// The stream is over on the wire: gracefully (`failure` nil, both FINs) or not (queued and
    /// buffered bytes are dropped, waiters fail).
    func closeSlot(_ token: UInt64, failure: (any Error)?, state: inout ChannelState, actions: inout ChannelActions) {
        guard var slot = state.streams.slots[token], !slot.closedOnWire else { return }
        slot.closedOnWire = true
        if slot.openedLocally { state.streams.liveLocal -= 1 } else { state.streams.livePeer -= 1 }
        if state.streams.byWire[slot.wire] == token { state.streams.byWire[slot.wire] = nil }
        if let failure {
            state.counters.streamsReset += 1
            slot.failure = failure
            slot.sendQueue.removeAll()
            slot.queuedBytes = 0
            slot.received.removeAll()
            slot.receivedBytes = 0
            if let waiter = slot.readWaiter {
                slot.readWaiter = nil
                actions.streamReaders.append((waiter, .failure(failure)))
            }
            if let waiter = slot.writeWaiter {
                slot.writeWaiter = nil
                actions.streamWriters.append((waiter, .failure(failure)))
            }
        }
        state.streams.slots[token] = slot.handleReleased ? nil : slot
    }

    /// The connection ended: every stream on it ends with `reason`.
    func streamsEnded(_ reason: String, state: inout ChannelState, actions: inout ChannelActions) {
        for (token, slot) in state.streams.slots where !slot.closedOnWire {
            closeSlot(token, failure: TransportError.streamAborted(reason), state: &state, actions: &actions)
        }
        state.streams.byWire.removeAll()
        state.streams.sendable.removeAll()
        state.streams.nextSendable = 0
        state.streams.highestPeer = 0
        for token in state.streams.slots.keys { state.streams.slots[token]?.listed = false }
        state.streams.liveLocal = 0
        state.streams.livePeer = 0
    }

    /// The channel closed: streams end, streams not yet taken are dropped (after the lock), the
    /// acceptor learns the sequence ended.
    func streamsClosed(state: inout ChannelState, actions: inout ChannelActions) {
        streamsEnded("the channel closed", state: &state, actions: &actions)
        actions.droppedStreams.append(contentsOf: state.streams.incoming)
        state.streams.incoming.removeAll()
        if let waiter = state.streams.acceptWaiter {
            state.streams.acceptWaiter = nil
            actions.streamAcceptors.append((waiter, nil))
        }
    }

    // MARK: writing (under the lock, from flush)

    /// The largest STREAM_DATA payload written in one frame.
    static let streamChunk = 32 * 1024

    /// Writes stream data and FINs round-robin, one chunk per stream per turn, within `budget`.
    /// Returns whether anything was written.
    func writeStreams(budget: inout Int, buffer: inout ByteBuffer, parts: inout [ByteBuffer], allocator: ByteBufferAllocator, state: inout ChannelState, actions: inout ChannelActions) -> Bool {
        var wrote = false
        while budget > 0, !state.streams.sendable.isEmpty {
            if state.streams.nextSendable >= state.streams.sendable.count { state.streams.nextSendable = 0 }
            let position = state.streams.nextSendable
            let token = state.streams.sendable[position]
            guard var slot = state.streams.slots[token], slot.hasSendable else {
                state.streams.sendable.remove(at: position)
                state.streams.slots[token]?.listed = false
                continue
            }
            if !slot.sendQueue.isEmpty {
                var chunk = slot.sendQueue.removeFirst()
                let take = min(chunk.readableBytes, slot.credit, Self.streamChunk)
                let piece = chunk.readSlice(length: take)!
                if chunk.readableBytes > 0 { slot.sendQueue.prepend(chunk) }
                slot.queuedBytes -= take
                slot.credit -= take
                FrameCodec.encodeStreamDataHead(stream: slot.wire, dataLength: take, into: &buffer)
                if take > configuration.inlineContentThreshold {
                    parts.append(buffer)
                    parts.append(piece)
                    buffer = allocator.buffer(capacity: 4096)
                } else {
                    var piece = piece
                    buffer.writeBuffer(&piece)
                }
                budget -= take
                state.counters.streamBytesSent += take
                if let waiter = slot.writeWaiter, slot.queuedBytes <= configuration.streamSendBuffer {
                    slot.writeWaiter = nil
                    actions.streamWriters.append((waiter, .success(())))
                }
            } else {
                FrameCodec.encode(.streamFinish(stream: slot.wire), into: &buffer)
                slot.finishSent = true
            }
            wrote = true
            state.streams.slots[token] = slot
            if slot.finishSent, slot.peerFinished { closeSlot(token, failure: nil, state: &state, actions: &actions) }
            state.streams.nextSendable = position + 1
        }
        return wrote
    }
}
