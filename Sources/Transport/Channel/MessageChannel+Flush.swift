import NIOCore
import NIOPosix

extension MessageChannel {
    /// Marks a flush as needed; the first request per event-loop turn schedules it.
    func requestFlush(state: inout ChannelState, actions: inout ChannelActions) {
        guard let link = state.link, !state.flushScheduled else { return }
        state.flushScheduled = true
        actions.flush = link
    }

    /// Requests a flush if `lane` has something it may write now.
    func scheduleFlushIfSendable(lane index: Int, state: inout ChannelState, actions: inout ChannelActions) {
        guard state.established, state.send[index].credit > 0 else { return }
        requestFlush(state: &state, actions: &actions)
    }

    /// Encodes control frames and as many messages as credit, writability and the per-flush
    /// budget allow into one batch, serving lanes round-robin, and writes it. Runs on the link's
    /// event loop.
    func flush(_ link: any ChannelLink) {
        var parts: [ByteBuffer] = []
        var actions = ChannelActions()
        let more: Bool = state.withLock { state in
            state.flushScheduled = false
            guard let current = state.link, current === link else {
                // A flush scheduled for a link that was since replaced: the newer link's
                // request may have been folded into it, so request one for that link now.
                requestFlush(state: &state, actions: &actions)
                return false
            }
            guard link.isWritable else { return false }
            var buffer = link.allocator.buffer(capacity: Self.batchSegmentCapacity)
            buffer.moveWriterIndex(forwardBy: link.headroom)
            buffer.moveReaderIndex(forwardBy: link.headroom)
            for frame in state.control { FrameCodec.encode(frame, into: &buffer) }
            state.control.removeAll(keepingCapacity: true)
            var budget = configuration.maxBytesPerFlush
            var more = false
            if state.established {
                let laneCount = state.send.count
                var allowance = [Int](repeating: .max, count: laneCount)
                if link.providesFlowControl {
                    for index in 0..<laneCount { allowance[index] = link.sendAllowance(for: Lane(rawValue: UInt8(index))) }
                }
                var progress = true
                while progress, budget > 0 {
                    progress = false
                    for offset in 0..<laneCount {
                        let index = (state.nextLaneToServe + offset) % laneCount
                        if write(lane: index, budget: &budget, allowance: &allowance[index], buffer: &buffer, parts: &parts, state: &state) {
                            progress = true
                        }
                        if budget <= 0 { break }
                    }
                    state.nextLaneToServe = (state.nextLaneToServe + 1) % laneCount
                    if budget > 0, writeStreams(budget: &budget, buffer: &buffer, parts: &parts, allocator: link.allocator, state: &state, actions: &actions) {
                        progress = true
                    }
                }
                if budget <= 0, !state.streams.sendable.isEmpty { more = true }
                for index in 0..<laneCount {
                    let lane = state.send[index]
                    if lane.unsentBytes < configuration.maxQueuedBytesPerLane, !lane.spaceWaiters.isEmpty {
                        for waiter in state.send[index].takeSpaceWaiters() { actions.senders.append((waiter, .success(false))) }
                    }
                    if budget <= 0, allowance[index] > 0, hasSendable(lane) { more = true }
                }
            }
            if buffer.readableBytes > 0 || parts.isEmpty { parts.append(buffer) }
            if parts.count > 1 || parts[0].readableBytes > 0 { state.lastSent = timerNow() }
            if more { state.flushScheduled = true }
            return more
        }
        perform(actions)
        if parts.contains(where: { $0.readableBytes > 0 }) { link.writeBatch(&parts) }
        if more { link.eventLoop.execute { self.flush(link) } }
    }

    private func hasSendable(_ lane: SendLane) -> Bool {
        guard lane.credit > 0, lane.sentCount < lane.queue.count else { return false }
        let next = lane.queue[lane.queue.index(lane.queue.startIndex, offsetBy: lane.sentCount)]
        return next.sequence == 0 || next.sequence <= lane.persistedUpTo
    }

    /// Writes up to one quantum of `lane`'s queue; returns whether anything was written.
    private func write(
        lane index: Int, budget: inout Int, allowance: inout Int, buffer: inout ByteBuffer, parts: inout [ByteBuffer], state: inout ChannelState
    ) -> Bool {
        var quantum = 64 * 1024
        var wrote = false
        let lane = Lane(rawValue: UInt8(index))
        while quantum > 0, budget > 0, allowance > 0, state.send[index].credit > 0, state.send[index].sentCount < state.send[index].queue.count {
            let position = state.send[index].queue.index(state.send[index].queue.startIndex, offsetBy: state.send[index].sentCount)
            let entry = state.send[index].queue[position]
            if entry.sequence > state.send[index].persistedUpTo { break }
            state.send[index].sentCount += 1
            state.send[index].unsentBytes -= entry.size
            if entry.sequence != 0, state.send[index].superseded.contains(entry.sequence) {
                state.counters.stateCoalesced += 1
                continue
            }
            let frame = MessageFrame(lane: lane, sequence: entry.sequence, delivery: entry.delivery, message: entry.message)
            let length: Int
            if entry.message.content.readableBytes > configuration.inlineContentThreshold {
                length = FrameCodec.encodeMessageHead(frame, into: &buffer)
                parts.append(buffer)
                parts.append(entry.message.content)
                buffer = link(allocatorFrom: state).buffer(capacity: 4096)
            } else {
                if buffer.readableBytes + entry.size > Self.batchSegmentCapacity, buffer.readableBytes > 0 {
                    // A new segment instead of growing this one: no reallocation copies, and
                    // segments stay small enough for the allocator to reuse.
                    parts.append(buffer)
                    buffer = link(allocatorFrom: state).buffer(capacity: Self.batchSegmentCapacity)
                }
                length = FrameCodec.encodeMessage(frame, into: &buffer)
            }
            state.send[index].credit -= length
            if allowance != .max { allowance -= length }
            state.counters.messagesSent += 1
            budget -= length
            quantum -= length
            wrote = true
        }
        state.send[index].trimFront()
        return wrote
    }

    /// The size of one buffer of a batch; a batch larger than this is written as several.
    static let batchSegmentCapacity = 64 * 1024

    private func link(allocatorFrom state: ChannelState) -> ByteBufferAllocator {
        state.link?.allocator ?? ByteBufferAllocator()
    }
}
