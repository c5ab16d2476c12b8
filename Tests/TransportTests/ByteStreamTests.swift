import NIOCore
import Testing
@testable import Transport


/// Byte streams beside the lanes, over every backend.
@Suite(.serialized) struct ByteStreamTests {
    /// Serves every stream the edge receives: echoes what it reads, then finishes.
    static func echo(on channel: MessageChannel) async {
        await withDiscardingTaskGroup { group in
            for await stream in channel.incomingStreams {
                group.addTask {
                    do {
                        while let chunk = try await stream.read() { try await stream.write(chunk) }
                        stream.finish()
                    } catch {}
                }
            }
        }
    }

    static func readAll(_ stream: ByteStream) async throws -> [UInt8] {
        var bytes: [UInt8] = []
        while let chunk = try await stream.read() { bytes += chunk.readableBytesView }
        return bytes
    }

    static func header(_ text: String) -> ByteBuffer { ByteBuffer(string: text) }

    @Test(arguments: Backend.allCases)
    func aStreamCarriesMegabytesBothWaysInOrder(backend: Backend) async throws {
        let pair = try await ChannelPair(backend: backend)
        try await pair.connect()
        let server = Task { await Self.echo(on: pair.edge) }
        let size = backend == .quicLossy ? 256 << 10 : 3 << 20
        let payload = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 2_654_435_761 >> 13) }
        let stream = try pair.cloud.openStream(header: Self.header("echo"))
        async let echoed = Self.readAll(stream)
        var offset = 0
        while offset < size {
            let length = min(size - offset, Int.random(in: 1...100_000))
            try await stream.write(ByteBuffer(bytes: payload[offset..<offset + length]))
            offset += length
        }
        stream.finish()
        let received = try await echoed
        #expect(received.count == size)
        #expect(received == payload)
        // Both directions are finished: the stream is over on the wire on both sides.
        #expect(await eventually { pair.cloud.streamStatistics.open == 0 && pair.edge.streamStatistics.open == 0 })
        #expect(pair.cloud.counters.streamBytesSent == size)
        server.cancel()
        await pair.shutdown()
    }

    @Test(arguments: [Backend.local, .webSocket, .quic])
    func manyStreamsInBothDirectionsRunAtOnce(backend: Backend) async throws {
        let pair = try await ChannelPair(backend: backend)
        try await pair.connect()
        let edgeServer = Task { await Self.echo(on: pair.edge) }
        let cloudServer = Task { await Self.echo(on: pair.cloud) }
        try await withThrowingTaskGroup { group in
            for index in 0..<100 {
                let opener = index.isMultiple(of: 2) ? pair.cloud : pair.edge
                group.addTask {
                    let stream = try opener.openStream(header: Self.header("echo \(index)"))
                    let text = String(repeating: "stream \(index);", count: 500)
                    try await stream.write(ByteBuffer(string: text))
                    stream.finish()
                    let back = try await Self.readAll(stream)
                    #expect(String(decoding: back, as: UTF8.self) == text)
                }
            }
            try await group.waitForAll()
        }
        #expect(pair.cloud.counters.streamsOpened == 50 && pair.cloud.counters.streamsAccepted == 50)
        #expect(pair.edge.counters.streamsOpened == 50 && pair.edge.counters.streamsAccepted == 50)
        edgeServer.cancel()
        cloudServer.cancel()
        await pair.shutdown()
    }

    @Test(arguments: [Backend.local, .webSocket, .quic])
    func halfCloseLeavesTheOtherDirectionOpen(backend: Backend) async throws {
        let pair = try await ChannelPair(backend: backend)
        try await pair.connect()
        let stream = try pair.cloud.openStream(header: Self.header("logs"))
        var iterator = pair.edge.incomingStreams.makeAsyncIterator()
        let accepted = try #require(await iterator.next())
        #expect(String(buffer: accepted.header) == "logs")
        // The cloud has nothing to say: it finishes at once; the edge keeps writing.
        stream.finish()
        #expect(try await accepted.read() == nil)
        for line in 0..<100 { try await accepted.write(ByteBuffer(string: "line \(line)\n")) }
        accepted.finish()
        let text = String(decoding: try await Self.readAll(stream), as: UTF8.self)
        #expect(text == (0..<100).map { "line \($0)\n" }.joined())
        // Writing after finishing is refused locally.
        await #expect(throws: TransportError.self) { try await stream.write(ByteBuffer(string: "late")) }
        await pair.shutdown()
    }

    @Test(arguments: [Backend.local, .webSocket, .quic])
    func aWriterThatFinishesAndGoesAwayStillDeliversEverythingToASlowReader(backend: Backend) async throws {
        let pair = try await ChannelPair(backend: backend) { $0.streamWindow = 64 << 10 }
        try await pair.connect()
        let stream = try pair.cloud.openStream(header: Self.header("log"))
        let size = 1 << 20
        let writer = Task {
            var iterator = pair.edge.incomingStreams.makeAsyncIterator()
            guard let accepted = await iterator.next() else { return }
            try await accepted.write(ByteBuffer(repeating: 0x41, count: size))
            accepted.finish()
            // The handle goes here, long before the reader has caught up.
        }
        var received = 0
        while let chunk = try await stream.read() {
            received += chunk.readableBytes
            // The writer's last bytes are queued well before they are read.
            if received >= size - (128 << 10) { try await writer.value }
            try await Task.sleep(for: .milliseconds(1))
        }
        #expect(received == size)
        stream.finish()
        #expect(await eventually { pair.cloud.streamStatistics.open == 0 && pair.edge.streamStatistics == (0, 0) })
        await pair.shutdown()
    }

    @Test(arguments: [Backend.local, .webSocket])
    func aSideThatServesNoStreamsRefusesThemAtOnce(backend: Backend) async throws {
        let pair = try await ChannelPair(backend: backend) { configuration in
            if configuration.localNodeID == "cloud" { configuration.acceptsPeerStreams = false }
        }
        try await pair.connect()
        let stream = try pair.edge.openStream(header: Self.header("unwanted"))
        // Data sent before the refusal arrives is dropped, not held.
        try? await stream.write(ByteBuffer(repeating: 9, count: 1000))
        do {
            _ = try await stream.read()
            Issue.record("a refused stream was served")
        } catch TransportError.streamReset(let reset) {
            #expect(reset.code == .refused)
            #expect(reset.reason.contains("serves no streams"), "\(reset.reason)")
        }
        #expect(pair.cloud.counters.streamsRefused == 1)
        #expect(await eventually { pair.cloud.streamStatistics == (0, 0) && pair.edge.streamStatistics.open == 0 })
        await pair.shutdown()
    }

    @Test func aCancelledReaderOrWriterLeavesTheStreamUsable() async throws {
        let pair = try await ChannelPair(backend: .local) { $0.streamWindow = 16 << 10; $0.streamSendBuffer = 16 << 10 }
        try await pair.connect()
        let stream = try pair.cloud.openStream(header: Self.header("idle"))
        var iterator = pair.edge.incomingStreams.makeAsyncIterator()
        let accepted = try #require(await iterator.next())
        let reader = Task { try await stream.read() }
        try await Task.sleep(for: .milliseconds(50))
        reader.cancel()
        await #expect(throws: CancellationError.self) { _ = try await reader.value }
        // Nobody reads on the edge: the writer waits for room, and gives up when cancelled.
        let writer = Task { for _ in 0..<16 { try await stream.write(ByteBuffer(repeating: 1, count: 8 << 10)) } }
        try await Task.sleep(for: .milliseconds(100))
        writer.cancel()
        await #expect(throws: CancellationError.self) { try await writer.value }
        try await accepted.write(ByteBuffer(string: "still here"))
        #expect(String(buffer: try #require(try await stream.read())) == "still here")
        await pair.shutdown()
    }

    @Test(arguments: [Backend.local, .webSocket, .quic])
    func aResetCarriesItsCodeAndReasonToThePeer(backend: Backend) async throws {
        let pair = try await ChannelPair(backend: backend)
        try await pair.connect()
        let stream = try pair.cloud.openStream(header: Self.header("exec nginx/missing"))
        var iterator = pair.edge.incomingStreams.makeAsyncIterator()
        let accepted = try #require(await iterator.next())
        accepted.reset(.other(16), reason: "container \"missing\" not found in pod")
        do {
            _ = try await stream.read()
            Issue.record("a reset stream read successfully")
        } catch TransportError.streamReset(let reset) {
            #expect(reset.code == .other(16))
            #expect(reset.reason == "container \"missing\" not found in pod")
        }
        await #expect(throws: TransportError.self) { try await stream.write(ByteBuffer(string: "x")) }
        // The reset side's own handle fails too, and nothing stays open.
        await #expect(throws: TransportError.self) { try await accepted.read() }
        #expect(await eventually { pair.cloud.streamStatistics.open == 0 && pair.edge.streamStatistics.open == 0 })
        #expect(pair.cloud.counters.streamsReset == 1 && pair.edge.counters.streamsReset == 1)
        await pair.shutdown()
    }

    @Test(arguments: [Backend.local, .webSocket, .quic])
    func streamsBeyondTheReceiversLimitAreRefusedWithAReason(backend: Backend) async throws {
        let pair = try await ChannelPair(backend: backend) { configuration in
            if configuration.localNodeID == "edge-1" { configuration.maxConcurrentStreams = 4 }
        }
        try await pair.connect()
        var streams: [ByteStream] = []
        for index in 0..<6 { streams.append(try pair.cloud.openStream(header: Self.header("flood \(index)"))) }
        for stream in streams.prefix(4) { try await stream.write(ByteBuffer(string: "hello")) }
        for stream in streams.suffix(2) {
            do {
                _ = try await stream.read()
                Issue.record("a stream beyond the limit was served")
            } catch TransportError.streamReset(let reset) {
                #expect(reset.code == .refused)
                #expect(reset.reason.contains("maxConcurrentStreams=4"), "\(reset.reason)")
            }
        }
        #expect(pair.edge.counters.streamsRefused == 2)
        #expect(pair.edge.streamStatistics.open == 4)
        // The connection survives, and the first four still work.
        var iterator = pair.edge.incomingStreams.makeAsyncIterator()
        let first = try #require(await iterator.next())
        #expect(String(buffer: try #require(try await first.read())) == "hello")
        #expect(pair.edge.isConnected && pair.cloud.isConnected)
        // This side's own limit refuses locally.
        let held = try (0..<4).map { _ in try pair.edge.openStream(header: Self.header("up")) }
        #expect(throws: TransportError.self) { _ = try pair.edge.openStream(header: Self.header("one too many")) }
        #expect(held.count == 4)
        await pair.shutdown()
    }

    @Test(arguments: [Backend.local, .webSocket, .quic])
    func aStalledStreamDoesNotHoldUpTheLanesNorTheReverse(backend: Backend) async throws {
        let pair = try await ChannelPair(backend: backend) {
            $0.streamWindow = 64 << 10; $0.streamSendBuffer = 64 << 10
            $0.bulkWindow = 64 << 10; $0.maxQueuedBytesPerLane = 128 << 10
        }
        try await pair.connect()
        // Nobody reads this stream: its writer fills the window and the send buffer, then waits.
        let stalled = try pair.cloud.openStream(header: Self.header("stalled"))
        let writer = Task {
            for _ in 0..<64 { try await stalled.write(ByteBuffer(repeating: 7, count: 16 << 10)) }
        }
        #expect(await eventually { pair.edge.streamStatistics.open == 1 })
        try await Task.sleep(for: .milliseconds(200))
        #expect(!writer.isCancelled)
        async let messages = collect(300, from: pair.edge, lane: .state)
        for index in 0..<300 { try await pair.cloud.send(makeMessage(index, size: 2000), on: .state, delivery: .reliable) }
        #expect(try await messages.count == 300)
        // Now a lane nobody reads: fill it, and a new stream still flows.
        var refused = false
        for index in 0..<10_000 where !refused {
            refused = try pair.cloud.trySend(makeMessage(index, size: 8 << 10), on: .bulk, delivery: .bestEffort) == .wouldBlock
            if !refused, index % 16 == 15 { try await Task.sleep(for: .milliseconds(1)) }
        }
        #expect(refused)
        let server = Task { await Self.echo(on: pair.edge) }
        // The stalled stream is the first the edge accepted: the echo server gets the next.
        let stream = try pair.cloud.openStream(header: Self.header("echo"))
        try await stream.write(ByteBuffer(repeating: 1, count: 200_000))
        stream.finish()
        _ = stream
        writer.cancel()
        server.cancel()
        await pair.shutdown()
    }

    @Test(arguments: [Backend.local, .webSocket, .quic])
    func aLostConnectionEndsItsStreamsAndTheNextConnectionCarriesNewOnes(backend: Backend) async throws {
        let pair = try await ChannelPair(backend: backend)
        try await pair.connect()
        let stream = try pair.cloud.openStream(header: Self.header("follow"))
        var iterator = pair.edge.incomingStreams.makeAsyncIterator()
        let accepted = try #require(await iterator.next())
        let reader = Task { try await stream.read() }
        let edgeReader = Task { try await accepted.read() }
        await pair.disconnect()
        await #expect(throws: TransportError.self) { _ = try await reader.value }
        await #expect(throws: TransportError.self) { _ = try await edgeReader.value }
        #expect(throws: TransportError.self) { _ = try pair.cloud.openStream(header: Self.header("offline")) }
        try await pair.connect()
        let server = Task { await Self.echo(on: pair.edge) }
        let fresh = try pair.cloud.openStream(header: Self.header("echo"))
        try await fresh.write(ByteBuffer(string: "after the reconnect"))
        fresh.finish()
        #expect(String(decoding: try await Self.readAll(fresh), as: UTF8.self) == "after the reconnect")
        server.cancel()
        await pair.shutdown()
    }

    @Test func dataBeyondTheWindowResetsTheStreamAndKeepsTheConnection() async throws {
        let pair = try await ChannelPair(backend: .local) { $0.streamWindow = 1024 }
        try await pair.connect()
        let stream = try pair.edge.openStream(header: Self.header("misbehaving"))
        var iterator = pair.cloud.incomingStreams.makeAsyncIterator()
        let accepted = try #require(await iterator.next())
        // Inject what a peer ignoring the window would send: 4 KiB at once on a 1 KiB window.
        var frame = ByteBuffer()
        FrameCodec.encode(.streamData(stream: 1, data: ByteBuffer(repeating: 0, count: 4096)), into: &frame)
        let link = try #require(pair.cloud.currentLink)
        let excess = frame
        try await link.eventLoop.submit { var bytes = excess; pair.cloud.receive(&bytes, from: link, wholeFrames: true) }.get()
        do {
            _ = try await stream.read()
            Issue.record("the peer kept a stream it reset")
        } catch TransportError.streamReset(let reset) {
            #expect(reset.code == .flowControl)
            #expect(reset.reason.contains("streamWindow=1024"), "\(reset.reason)")
        }
        await #expect(throws: TransportError.self) { try await accepted.read() }
        #expect(pair.cloud.counters.streamViolations == 1)
        #expect(pair.cloud.isConnected)
        // Data for a stream number nobody opened is a protocol error that ends the connection.
        var bogus = ByteBuffer()
        FrameCodec.encode(.streamData(stream: 99, data: ByteBuffer(string: "x")), into: &bogus)
        let unknown = bogus
        try await link.eventLoop.submit { var bytes = unknown; pair.cloud.receive(&bytes, from: link, wholeFrames: true) }.get()
        #expect(await eventually { !pair.cloud.isConnected })
        await pair.shutdown()
    }

    @Test(arguments: [Backend.webSocket, .quic])
    func tenThousandStreamsOpenedAndClosedLeaveNothingBehind(backend: Backend) async throws {
        let pair = try await ChannelPair(backend: backend)
        try await pair.connect()
        let server = Task { await Self.echo(on: pair.edge) }
        try await withThrowingTaskGroup { group in
            for worker in 0..<20 {
                group.addTask {
                    for index in 0..<500 {
                        let stream = try pair.cloud.openStream(header: Self.header("echo"))
                        if index.isMultiple(of: 3) {
                            // Abandoned without a FIN: releasing the handle resets it.
                            try await stream.write(ByteBuffer(string: "x"))
                            continue
                        }
                        try await stream.write(ByteBuffer(string: "\(worker)/\(index)"))
                        stream.finish()
                        #expect(try await Self.readAll(stream).count == "\(worker)/\(index)".utf8.count)
                    }
                }
            }
            try await group.waitForAll()
        }
        #expect(pair.cloud.counters.streamsOpened == 10_000)
        #expect(await eventually { pair.cloud.streamStatistics == (0, 0) && pair.edge.streamStatistics == (0, 0) },
                "cloud \(pair.cloud.streamStatistics), edge \(pair.edge.streamStatistics)")
        server.cancel()
        await pair.shutdown()
    }
}
