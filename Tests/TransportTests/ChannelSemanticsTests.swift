import NIOCore
import NIOEmbedded
import Testing
@testable import Transport

/// The channel contract, run over every backend.
@Suite(.serialized) struct ChannelSemanticsTests {
    @Test(arguments: Backend.allCases)
    func ordersMessagesWithinEachLane(backend: Backend) async throws {
        let pair = try await ChannelPair(backend: backend)
        try await pair.connect()
        let count = 2000
        async let state = collect(count, from: pair.cloud, lane: .state)
        async let events = collect(count, from: pair.cloud, lane: .events)
        for index in 0..<count {
            try await pair.edge.send(makeMessage(index), on: .state, delivery: .reliable)
            try await pair.edge.send(makeMessage(index, size: 300), on: .events, delivery: .bestEffort)
        }
        #expect(try await state.map { index(of: $0) } == Array(0..<count))
        #expect(try await events.map { index(of: $0) } == Array(0..<count))
        await pair.shutdown()
    }

    @Test(arguments: Backend.allCases)
    func batchSendsPersistDeliverInOrderAndWaitForRoom(backend: Backend) async throws {
        // The batch is ten times the outbox bound: the call must suspend and continue, not fail.
        let pair = try await ChannelPair(backend: backend) { $0.maxOutboxMessages = 100 }
        try await pair.connect()
        let count = 1000
        async let received = collect(count, from: pair.cloud, lane: .state)
        try await pair.edge.send(contentsOf: (0..<count).map { makeMessage($0) }, on: .state, delivery: .reliable)
        #expect(try await received.map { index(of: $0)! } == Array(0..<count))
        #expect(await eventually { pair.edge.statistics(for: .state).unacknowledged == 0 })
        await pair.shutdown()
    }

    @Test(arguments: Backend.allCases)
    func aStalledLaneDoesNotBlockAnother(backend: Backend) async throws {
        let pair = try await ChannelPair(backend: backend) {
            $0.initialWindow = 64 * 1024; $0.bulkWindow = 96 * 1024; $0.maxQueuedBytesPerLane = 128 * 1024
        }
        try await pair.connect()
        if !backend.isQUIC {
            // The bulk lane has its own window; the others share initialWindow.
            #expect(await eventually { pair.edge.statistics(for: .bulk).credit == 96 * 1024 })
            #expect(pair.edge.statistics(for: .events).credit == 64 * 1024)
        }
        // Nobody reads the bulk lane: fill its window and queue until trySend refuses.
        var refused = false
        for index in 0..<10_000 where !refused {
            refused = try pair.edge.trySend(makeMessage(index, size: 8 * 1024), on: .bulk, delivery: .bestEffort) == .wouldBlock
            if !refused, index % 16 == 15 { try await Task.sleep(for: .milliseconds(1)) }
        }
        #expect(refused, "the bulk lane never ran out of room")
        async let events = collect(500, from: pair.cloud, lane: .events)
        for index in 0..<500 { try await pair.edge.send(makeMessage(index), on: .events, delivery: .reliable) }
        #expect(try await events.count == 500)
        // The bulk lane is still held back where its window ran out; the receiver holds at most its window.
        if backend.isQUIC, let link = pair.edgeQUICLink {
            #expect(try await pair.onLoop(link) { $0.unsentBytes(for: .bulk) } > 0)
        } else {
            #expect(pair.edge.statistics(for: .bulk).unsentBytes > 0)
        }
        let buffered = pair.cloud.statistics(for: .bulk).bufferedBytes
        // Credit may go negative by one frame: at most one message beyond the window.
        #expect(buffered > 0 && buffered <= (96 + 9) * 1024, "bulk receiver buffered \(buffered) bytes, window is 96 KiB")
        await pair.shutdown()
    }

    @Test(arguments: Backend.allCases)
    func backpressureBoundsMemoryForASlowConsumer(backend: Backend) async throws {
        let window = 32 * 1024
        let pair = try await ChannelPair(backend: backend) {
            $0.initialWindow = window; $0.maxQueuedBytesPerLane = 64 * 1024; $0.maxOutboxMessages = 100
        }
        try await pair.connect()
        let count = 400
        let consumer = Task {
            var received = 0
            var maxBuffered = 0
            for await _ in pair.cloud.messages(on: .state) {
                maxBuffered = max(maxBuffered, pair.cloud.statistics(for: .state).bufferedBytes)
                received += 1
                try? await Task.sleep(for: .milliseconds(2))  // far slower than the producer
                if received == count { break }
            }
            return maxBuffered
        }
        var maxUnacknowledged = 0
        let start = ContinuousClock.now
        for index in 0..<count {
            try await pair.edge.send(makeMessage(index, size: 1024), on: .state, delivery: .reliable)
            maxUnacknowledged = max(maxUnacknowledged, pair.edge.statistics(for: .state).unacknowledged)
        }
        let producerTime = ContinuousClock.now - start
        let maxBuffered = await consumer.value
        #expect(maxUnacknowledged <= 100, "sender held \(maxUnacknowledged) unacknowledged messages, bound is 100")
        // Over QUIC a lane buffers up to the QUIC stream window when the channel's lane window is
        // smaller (QUICLink warns of it): the transport parameters announce one initial window,
        // 64 KiB, for every stream. The receiver reaches it only when the consumer falls far
        // behind, as it did twice with the whole suite running in the process (59,670 and
        // 61,880 bytes).
        let bound = backend.isQUIC ? max(window, QUICLink.Options().initialStreamWindow) : window
        #expect(maxBuffered <= bound + 2048, "receiver buffered \(maxBuffered) bytes, the lane's window is \(bound)")
        // The producer was held back: it could not finish far ahead of the consumer (400 × 2 ms).
        #expect(producerTime > .milliseconds(400), "producer finished in \(producerTime): not held back")
        await pair.shutdown()
    }

    @Test(arguments: Backend.allCases)
    func creditIsReturnedExactlyByteForByte(backend: Backend) async throws {
        let window = 64 * 1024
        let pair = try await ChannelPair(backend: backend) { $0.initialWindow = window }
        try await pair.connect()
        // Mixed sizes, so bodies cross the 1-, 2- and 4-byte varint widths.
        let count = 600
        async let received = collect(count, from: pair.cloud, lane: .state)
        for index in 0..<count {
            try await pair.edge.send(makeMessage(index, size: [10, 100, 5000, 20_000][index % 4]), on: .state, delivery: .reliable)
        }
        #expect(try await received.count == count)
        // Everything is consumed: what the sender may still send plus what the receiver has not
        // yet credited back is exactly one window, no byte more or less. Over QUIC the window
        // is the lane stream's: what the receiver advertised beyond what arrived.
        if backend.isQUIC {
            let link = try #require(pair.cloudQUICLink)
            let balanced = await eventually {
                let open = (try? await pair.onLoop(link) { $0.openWindow(for: .state) }) ?? -1
                return open + pair.cloud.statistics(for: .state).uncreditedBytes == window
            }
            let open = try await pair.onLoop(link) { $0.openWindow(for: .state) }
            #expect(balanced, "open window \(open) + uncredited \(pair.cloud.statistics(for: .state).uncreditedBytes) != \(window)")
        } else {
            let balanced = await eventually {
                pair.edge.statistics(for: .state).credit + pair.cloud.statistics(for: .state).uncreditedBytes == window
            }
            #expect(balanced, "credit \(pair.edge.statistics(for: .state).credit) + uncredited \(pair.cloud.statistics(for: .state).uncreditedBytes) != \(window)")
        }
        await pair.shutdown()
    }

    @Test(arguments: Backend.allCases)
    func stateMessagesCoalesceToTheLatestPerKey(backend: Backend) async throws {
        let pair = try await ChannelPair(backend: backend)
        // Offline: 100 updates of 5 keys.
        for index in 0..<100 {
            try await pair.edge.send(makeMessage(index, resource: "key\(index % 5)"), on: .state, delivery: .state(key: "key\(index % 5)"))
        }
        #expect(pair.edge.statistics(for: .state).unacknowledged == 5)
        try await pair.connect()
        let received = try await collect(5, from: pair.cloud, lane: .state)
        #expect(received.map { index(of: $0)! }.sorted() == [95, 96, 97, 98, 99])
        // Nothing else arrives.
        try await Task.sleep(for: .milliseconds(100))
        #expect(pair.cloud.statistics(for: .state).bufferedBytes == 0)
        await pair.shutdown()
    }

    @Test(arguments: Backend.allCases)
    func noLossNoDuplicatesAcrossForcedDisconnects(backend: Backend) async throws {
        let pair = try await ChannelPair(backend: backend)
        try await pair.connect()
        let count = 3000
        let receiver = Task { try await collect(count, from: pair.cloud, lane: .state, timeout: .seconds(60)) }
        for index in 0..<count {
            try await pair.edge.send(makeMessage(index), on: .state, delivery: .reliable)
            if index % 1000 == 500 {
                await pair.disconnect()
                try await pair.connect()
            }
        }
        let received = try await receiver.value
        #expect(received.map { index(of: $0)! } == Array(0..<count))
        try await Task.sleep(for: .milliseconds(100))
        #expect(pair.cloud.statistics(for: .state).bufferedBytes == 0, "a duplicate was buffered")
        await pair.shutdown()
    }

    @Test(arguments: Backend.allCases)
    func senderRestartReplaysOnlyUnacknowledgedFromSQLite(backend: Backend) async throws {
        let pair = try await ChannelPair(backend: backend)
        try await pair.connect()
        let first = try await { () async throws -> [Message] in
            async let received = collect(100, from: pair.cloud, lane: .state)
            for index in 0..<100 { try await pair.edge.send(makeMessage(index), on: .state, delivery: .reliable) }
            return try await received
        }()
        #expect(first.count == 100)
        _ = await eventually { pair.edge.statistics(for: .state).unacknowledged == 0 }
        await pair.disconnect()
        // Offline: 50 more, then the edge process "restarts" (closes and reopens its SQLite file).
        for index in 100..<150 { try await pair.edge.send(makeMessage(index), on: .state, delivery: .reliable) }
        try await pair.restartEdge()
        #expect(pair.edge.statistics(for: .state).unacknowledged == 50)
        try await pair.connect()
        let rest = try await collect(50, from: pair.cloud, lane: .state)
        #expect(rest.map { index(of: $0)! } == Array(100..<150))
        try await Task.sleep(for: .milliseconds(100))
        #expect(pair.cloud.counters.duplicatesDropped == 0)
        #expect(pair.cloud.statistics(for: .state).bufferedBytes == 0)
        await pair.shutdown()
    }

    @Test(arguments: Backend.allCases)
    func receiverRestartDropsDuplicatesByItsPersistedMark(backend: Backend) async throws {
        let pair = try await ChannelPair(backend: backend) { $0.initialWindow = 16 * 1024 }
        try await pair.connect()
        for index in 0..<200 { try await pair.edge.send(makeMessage(index, size: 200), on: .state, delivery: .reliable) }
        let first = try await collect(80, from: pair.cloud, lane: .state)
        #expect(first.map { index(of: $0)! } == Array(0..<80))
        // The cloud process restarts: its mark (80) is persisted on close; what it buffered but
        // did not hand out is replayed by the edge.
        try await pair.restartCloud()
        try await pair.connect()
        let rest = try await collect(120, from: pair.cloud, lane: .state)
        #expect(rest.map { index(of: $0)! } == Array(80..<200))
        await pair.shutdown()
    }

    @Test(arguments: [Backend.local, .quic])
    func messagesTakenButNotHandledAreSentAgainAfterARestart(backend: Backend) async throws {
        let pair = try await ChannelPair(backend: backend) { $0.lanesAcknowledgedAfterHandling = [.state] }
        try await pair.connect()
        for index in 0..<10 { try await pair.edge.send(makeMessage(index), on: .state, delivery: .reliable) }
        let taken = try await collect(10, from: pair.cloud, lane: .state)
        // Handled out of order: 6 first, then 0–3. The mark covers 0–3 only; 4, 5 and 7–9 are not
        // handled, and 6 waits behind them.
        pair.cloud.acknowledge(taken[6].header.id, on: .state)
        for message in taken[0..<4] { pair.cloud.acknowledge(message.header.id, on: .state) }
        pair.cloud.acknowledge(MessageID.next(), on: .state)
        #expect(pair.cloud.awaitingHandling(on: .state) == 6)
        #expect(await eventually { pair.edge.statistics(for: .state).unacknowledged == 6 })
        // The receiving process stops before handling the rest: they come again, 6 included.
        try await pair.restartCloud()
        try await pair.connect()
        let again = try await collect(6, from: pair.cloud, lane: .state)
        #expect(again.map { index(of: $0)! } == Array(4..<10))
        for message in again { pair.cloud.acknowledge(message.header.id, on: .state) }
        #expect(await eventually { pair.edge.statistics(for: .state).unacknowledged == 0 })
        await pair.shutdown()
    }

    @Test(arguments: Backend.allCases)
    func requestsGetTheirResponsesAndTimeOut(backend: Backend) async throws {
        let pair = try await ChannelPair(backend: backend)
        try await pair.connect()
        let responder = Task {
            for await request in pair.cloud.messages(on: .request) {
                var reply = ByteBuffer()
                reply.writeString("re:\(String(buffer: request.content))")
                try await pair.cloud.respond(to: request, content: reply)
            }
        }
        let response = try await pair.edge.request(makeMessage(42), on: .request, timeout: .seconds(5))
        #expect(String(buffer: response.content) == "re:m42")
        responder.cancel()
        await pair.cloud.close()
        await #expect(throws: TransportError.self) { () async throws in
            _ = try await pair.edge.request(makeMessage(1), on: .request, timeout: .milliseconds(200))
        }
        await pair.shutdown()
    }

    @Test(arguments: Backend.allCases)
    func bestEffortIsDroppedAndCountedWhileDisconnected(backend: Backend) async throws {
        let pair = try await ChannelPair(backend: backend)
        #expect(try pair.edge.trySend(makeMessage(1), on: .events, delivery: .bestEffort) == .dropped)
        try await pair.edge.send(makeMessage(2), on: .events, delivery: .bestEffort)
        #expect(pair.edge.counters.bestEffortDropped == 2)
        await pair.shutdown()
    }

    @Test(arguments: Backend.allCases)
    func requestsTimeOutAfterTheirTimeoutOnTheChannelsClock(backend: Backend) async throws {
        // The default 30 s, on a clock the test advances.
        let time = NIOAsyncTestingEventLoop()
        let pair = try await ChannelPair(backend: backend) { $0.timerLoop = time }
        try await pair.connect()

        // Answered after 29 s: in time.
        async let answered = pair.edge.request(makeMessage(1), on: .request)
        let first = try await collect(1, from: pair.cloud, lane: .request)[0]
        await time.advanceTime(by: .seconds(29))
        try await pair.cloud.respond(to: first, content: ByteBuffer(string: "late but in time"))
        #expect(String(buffer: try await answered.content) == "late but in time")

        // Unanswered for 30 s: timed out, with the request's id and timeout.
        async let unanswered = pair.edge.request(makeMessage(2), on: .request)
        let second = try await collect(1, from: pair.cloud, lane: .request)[0]
        await time.advanceTime(by: .seconds(30))
        let advanced = ContinuousClock.now
        do {
            _ = try await unanswered
            Issue.record("the request did not time out")
        } catch TransportError.requestTimedOut(let id, let timeout) {
            #expect(id == second.header.id && timeout == .seconds(30))
        }
        #expect(ContinuousClock.now - advanced < .seconds(10), "timed out on the channel's clock, not after 30 s of real time")
        await pair.shutdown()
        await time.shutdownGracefully()
    }

    @Test(arguments: Backend.allCases)
    func deadPeerIsDetectedAndKeepaliveKeepsALiveOneOpen(backend: Backend) async throws {
        // Default timings (a PING after 15 s without sending, dead after 45 s of silence) on a
        // clock the test advances.
        let time = NIOAsyncTestingEventLoop()
        let pair = try await ChannelPair(backend: backend) { $0.timerLoop = time }
        try await pair.connect()
        // Two idle minutes, 5 s at a time: each step's PINGs cross the real connection and are
        // answered before the next.
        for _ in 0..<24 {
            await time.advanceTime(by: .seconds(5))
            let pings = pair.edge.counters.pingsSent + pair.cloud.counters.pingsSent
            #expect(await eventually { pair.edge.counters.pongsReceived + pair.cloud.counters.pongsReceived == pings })
        }
        #expect(pair.edge.counters.pingsSent >= 4 && pair.cloud.counters.pingsSent >= 4, "\(pair.edge.counters) \(pair.cloud.counters)")
        #expect(pair.edge.isConnected && pair.cloud.isConnected, "an idle but live connection was dropped")
        await pair.shutdown()
        await time.shutdownGracefully()

        // Nobody pings; the cloud tolerates 44 s of the edge's silence, and not a minute more
        // (it looks every 7.5 s, a sixth of the timeout; a frame the edge sent after the
        // handshake may arrive when the clock already reads 44 s).
        let silentTime = NIOAsyncTestingEventLoop()
        let silent = try await ChannelPair(backend: backend) { $0.timerLoop = silentTime; $0.keepaliveInterval = .seconds(3600) }
        silent.edgeConfiguration.deadPeerTimeout = .seconds(3600)
        try await silent.restartEdge()
        try await silent.connect()
        await silentTime.advanceTime(by: .seconds(44))
        #expect(silent.cloud.isConnected)
        await silentTime.advanceTime(by: .seconds(60))
        #expect(await eventually(timeout: .seconds(5)) { !silent.cloud.isConnected })
        #expect(silent.cloud.counters.protocolErrors == 1)
        await silent.shutdown()
        await silentTime.shutdownGracefully()
    }

    @Test(arguments: Backend.allCases)
    func aFullOutboxRefusesWithAClearErrorAndLosesNothingStored(backend: Backend) async throws {
        let directory = makeTemporaryDirectory()
        defer { removeTemporaryDirectory(directory) }
        let outbox = try Outbox(configuration: .init(path: directory + "/small.sqlite", maxSizeBytes: 256 * 1024))
        let edge = try MessageChannel(configuration: ChannelConfiguration(localNodeID: "edge-1", peerNodeID: "cloud"), outbox: outbox)
        var stored = 0
        var failure: (any Error)?
        for index in 0..<1000 {
            do {
                try await edge.send(makeMessage(index, size: 8 * 1024), on: .bulk, delivery: .reliable)
                stored += 1
            } catch {
                failure = error
                break
            }
        }
        guard case .outboxWriteFailed(let sqliteError)? = failure as? TransportError else {
            Issue.record("expected outboxWriteFailed, got \(String(describing: failure))"); return
        }
        #expect(sqliteError.isFull)
        #expect(stored > 5)
        #expect(try await outbox.pendingCount(peer: "cloud") == stored)
        #expect(edge.statistics(for: .bulk).unacknowledged == stored)
        await edge.close()
        _ = backend
    }
}
