import NIOCore
import Storage
import Testing
@testable import Transport

/// The outbox's segment storage: rows split at the configured size, partial acknowledgement of
/// a row, state coalescing across a restart, and files of another layout refused.
@Suite struct OutboxTests {
    @Test func aBatchLargerThanASegmentTakesSeveralRowsAndLoadsInOrder() async throws {
        let directory = makeTemporaryDirectory()
        defer { removeTemporaryDirectory(directory) }
        let configuration = Outbox.Configuration(path: directory + "/edge.sqlite", maxSegmentBytes: 2048)
        let edge = try MessageChannel(configuration: ChannelConfiguration(localNodeID: "edge-1", peerNodeID: "cloud"), outbox: try Outbox(configuration: configuration))
        try await edge.send(contentsOf: (0..<100).map { makeMessage($0, size: 100) }, on: .state, delivery: .reliable)
        await edge.close()

        let reopened = try Outbox(configuration: configuration)
        // A segment takes frames until it holds 2 KiB (the last one may cross the bound).
        var frame = ByteBuffer()
        FrameCodec.encodeMessage(MessageFrame(lane: .state, sequence: 1, delivery: .reliable, message: makeMessage(0, size: 100)), into: &frame)
        let perSegment = (2048 + frame.readableBytes - 1) / frame.readableBytes
        #expect(try await reopened.segmentCount(peer: "cloud") == (100 + perSegment - 1) / perSegment)
        #expect(try await reopened.storedSession(peer: "cloud", limits: FrameLimits()).entries.map(\.sequence) == Array(1...100))
        let restarted = try MessageChannel(configuration: ChannelConfiguration(localNodeID: "edge-1", peerNodeID: "cloud"), outbox: reopened)
        #expect(restarted.statistics(for: .state).unacknowledged == 100)
        await restarted.close()
    }

    @Test func aPartlyAcknowledgedSegmentReplaysOnlyItsRemainder() async throws {
        let pair = try await ChannelPair(backend: .local)
        try await pair.connect()
        // One batch, one segment row; the cloud consumes (and so acknowledges) only 40.
        try await pair.edge.send(contentsOf: (0..<100).map { makeMessage($0) }, on: .state, delivery: .reliable)
        let first = try await collect(40, from: pair.cloud, lane: .state)
        #expect(first.map { index(of: $0)! } == Array(0..<40))
        #expect(await eventually { pair.edge.statistics(for: .state).unacknowledged == 60 })
        await pair.disconnect()
        try await pair.restartEdge()
        #expect(pair.edge.statistics(for: .state).unacknowledged == 60)
        await pair.shutdown()
    }

    @Test func stateMessagesCoalesceAcrossARestart() async throws {
        let pair = try await ChannelPair(backend: .local)
        for index in 0..<100 {
            try await pair.edge.send(makeMessage(index, resource: "key\(index % 5)"), on: .state, delivery: .state(key: "key\(index % 5)"))
        }
        try await pair.restartEdge()
        // The file itself loads only the newest per key (not just the channel's in-memory supersede).
        let stored = try Outbox(configuration: .init(path: pair.directory + "/edge.sqlite"))
        #expect(try await stored.pendingCount(peer: "cloud") == 5)
        #expect(pair.edge.statistics(for: .state).unacknowledged == 5)
        try await pair.connect()
        let received = try await collect(5, from: pair.cloud, lane: .state)
        #expect(received.map { index(of: $0)! }.sorted() == [95, 96, 97, 98, 99])
        try await Task.sleep(for: .milliseconds(100))
        #expect(pair.cloud.statistics(for: .state).bufferedBytes == 0)
        await pair.shutdown()
    }

    @Test func aFileOfAnotherLayoutIsRefusedWithAClearError() async throws {
        let directory = makeTemporaryDirectory()
        defer { removeTemporaryDirectory(directory) }
        let path = directory + "/old.sqlite"
        try await Self.createForeignFile(at: path)
        let error = #expect(throws: SQLiteError.self) { try Outbox(configuration: .init(path: path)) }
        #expect(error?.message.contains("layout 0") == true, "\(String(describing: error))")
    }

    @Test func aCorruptSegmentIsAClearErrorNotACrash() async throws {
        let directory = makeTemporaryDirectory()
        defer { removeTemporaryDirectory(directory) }
        let path = directory + "/edge.sqlite"
        let outbox = try Outbox(configuration: .init(path: path))
        let edge = try MessageChannel(configuration: ChannelConfiguration(localNodeID: "edge-1", peerNodeID: "cloud"), outbox: outbox)
        try await edge.send(makeMessage(1), on: .state, delivery: .reliable)
        await edge.close()
        try await Self.overwriteSegments(at: path, with: [0x01, 0x02, 0xFF, 0xFF])
        let error = #expect(throws: SQLiteError.self) {
            try MessageChannel(configuration: ChannelConfiguration(localNodeID: "edge-1", peerNodeID: "cloud"), outbox: try Outbox(configuration: .init(path: path)))
        }
        #expect(error?.message.contains("does not decode") == true, "\(String(describing: error))")
    }

    private static func overwriteSegments(at path: String, with bytes: [UInt8]) async throws {
        let db = try Database(path: path)
        try await db.exclusive { db in
            let update = try db.statement("UPDATE segments SET frames = ?")
            update.bind(bytes: bytes, at: 1)
            try update.run()
        }
        await db.close()
    }

    /// A SQLite file with a table of its own and no layout version.
    private static func createForeignFile(at path: String) async throws {
        let db = try Database(path: path)
        try await db.exclusive { db in try db.execute("CREATE TABLE outbox(peer TEXT, lane INTEGER, seq INTEGER, message BLOB)") }
        await db.close()
    }
}
