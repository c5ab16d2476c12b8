import NIOCore
import Storage
import NIOPosix

extension MessageChannel {
    /// Carries out what was decided under the lock.
    func perform(_ actions: ChannelActions) {
        for timer in actions.cancelTimers { timer.cancel() }
        if let (link, goAway) = actions.close {
            link.eventLoop.execute { link.close(sending: goAway) }
        }
        if let link = actions.flush {
            let delay = configuration.flushCoalescingDelay
            if link.eventLoop.inEventLoop || delay <= .zero {
                link.eventLoop.execute { self.flush(link) }
            } else {
                link.eventLoop.scheduleTask(in: .nanoseconds(delay.nanoseconds)) { self.flush(link) }
            }
        }
        if let link = actions.startAckTimer {
            link.eventLoop.scheduleTask(in: .nanoseconds(configuration.ackDelay.nanoseconds)) { [self] in
                var actions = ChannelActions()
                state.withLock { state in
                    state.ackTimerScheduled = false
                    collectDeliveryMarks(state: &state, actions: &actions)
                }
                perform(actions)
            }
        }
        if let (link, grants) = actions.grants {
            if link.eventLoop.inEventLoop {
                for (lane, bytes) in grants { link.grant(bytes, on: lane) }
            } else {
                link.eventLoop.execute { for (lane, bytes) in grants { link.grant(bytes, on: lane) } }
            }
        }
        if actions.persist { startPersistIfNeeded() }
        for (continuation, message) in actions.consumers { continuation.resume(returning: message) }
        for (continuation, result) in actions.senders { continuation.resume(with: result) }
        for (continuation, result) in actions.requests { continuation.resume(with: result) }
        for (continuation, result) in actions.streamReaders { continuation.resume(with: result) }
        for (continuation, result) in actions.streamWriters { continuation.resume(with: result) }
        for (continuation, stream) in actions.streamAcceptors { continuation.resume(returning: stream) }
        if let observer = actions.observer {
            switch actions.connectionEvent {
            case true?: observer.channelConnected(self)
            case false?: observer.channelDisconnected(self)
            case nil: break
            }
            for lane in actions.available { observer.channel(self, hasMessagesOn: lane) }
        }
    }

    /// Moves delivered-but-unacknowledged marks towards the peer: through the outbox (persist,
    /// then ACK) or, without an outbox, straight into ACK frames.
    func collectDeliveryMarks(state: inout ChannelState, actions: inout ChannelActions) {
        for index in state.receive.indices {
            let lane = state.receive[index]
            guard lane.deliveredUpTo > lane.acknowledgedUpTo, lane.deliveredUpTo > (state.pending.delivered[Lane(rawValue: UInt8(index))] ?? 0) else { continue }
            state.receive[index].deliveredSinceAck = 0
            if outbox != nil {
                state.pending.delivered[Lane(rawValue: UInt8(index))] = lane.deliveredUpTo
                actions.persist = true
            } else {
                state.receive[index].persistedUpTo = lane.deliveredUpTo
                state.receive[index].acknowledgedUpTo = lane.deliveredUpTo
                if state.established {
                    state.control.append(.ack(lane: Lane(rawValue: UInt8(index)), sequence: lane.deliveredUpTo))
                    requestFlush(state: &state, actions: &actions)
                }
            }
        }
    }

    /// Hands the pending outbox batch to the outbox's writer thread unless a write is in flight
    /// (what accumulates meanwhile goes with the next commit: group commit).
    func startPersistIfNeeded() {
        guard outbox != nil else { return }
        let batch: OutboxBatch? = state.withLock { state in
            guard !state.persisting, !state.pending.isEmpty else { return nil }
            state.persisting = true
            defer { state.pending = OutboxBatch() }
            var batch = state.pending
            batch.localEpoch = state.localEpoch
            return batch
        }
        if let batch { persist(batch) }
    }

    /// Commits `batch`; once it is done, commits what accumulated meanwhile.
    private func persist(_ batch: OutboxBatch) {
        outbox!.submitCommit(batch, peer: configuration.peerNodeID) { [self] outcome in
            let result: Result<Void, SQLiteError>
            switch outcome {
            case .success: result = .success(())
            case .failure(let error as SQLiteError): result = .failure(error)
            case .failure(let error): result = .failure(SQLiteError(code: 1, message: "\(error)"))
            }
            var actions = ChannelActions()
            let next: OutboxBatch? = state.withLock { state in
                persisted(batch, result: result, state: &state, actions: &actions)
                guard case .success = result, !state.pending.isEmpty else {
                    state.persisting = false
                    return nil
                }
                defer { state.pending = OutboxBatch() }
                var next = state.pending
                next.localEpoch = state.localEpoch
                return next
            }
            perform(actions)
            if let next { persist(next) }
        }
    }

    private func persisted(_ batch: OutboxBatch, result: Result<Void, SQLiteError>, state: inout ChannelState, actions: inout ChannelActions) {
        switch result {
        case .success:
            for append in batch.appends {
                let index = Int(append.lane.rawValue)
                state.send[index].persistedUpTo = max(state.send[index].persistedUpTo, append.sequence)
            }
            var stillWaiting: [ChannelState.PersistWaiter] = []
            for waiter in state.persistWaiters {
                if waiter.sequence <= state.send[Int(waiter.lane.rawValue)].persistedUpTo {
                    actions.senders.append((waiter.continuation, .success(true)))
                } else {
                    stillWaiting.append(waiter)
                }
            }
            state.persistWaiters = stillWaiting
            for index in state.send.indices { scheduleFlushIfSendable(lane: index, state: &state, actions: &actions) }
            for (lane, sequence) in batch.delivered {
                let index = Int(lane.rawValue)
                guard sequence > state.receive[index].persistedUpTo else { continue }
                state.receive[index].persistedUpTo = sequence
                if state.established, sequence > state.receive[index].acknowledgedUpTo {
                    state.receive[index].acknowledgedUpTo = sequence
                    state.control.append(.ack(lane: lane, sequence: sequence))
                    requestFlush(state: &state, actions: &actions)
                }
            }
        case .failure(let error):
            logger.error("outbox write failed", metadata: ["error": "\(error)"])
            var failed: [Int: Set<UInt64>] = [:]
            for append in batch.appends { failed[Int(append.lane.rawValue), default: []].insert(append.sequence) }
            for (index, sequences) in failed { state.send[index].removeFailed(sequences) }
            var stillWaiting: [ChannelState.PersistWaiter] = []
            for waiter in state.persistWaiters {
                if failed[Int(waiter.lane.rawValue)]?.contains(waiter.sequence) == true {
                    actions.senders.append((waiter.continuation, .failure(TransportError.outboxWriteFailed(error))))
                } else {
                    stillWaiting.append(waiter)
                }
            }
            state.persistWaiters = stillWaiting
            // Marks and acknowledgements are retried with the next batch.
            for (lane, sequence) in batch.delivered where state.pending.delivered[lane] == nil {
                state.pending.delivered[lane] = sequence
            }
            for (lane, sequence) in batch.acknowledged {
                state.pending.acknowledged[lane] = max(state.pending.acknowledged[lane] ?? 0, sequence)
            }
            if let epoch = batch.remoteEpoch, state.pending.remoteEpoch == nil { state.pending.remoteEpoch = epoch }
        }
    }
}
