@testable import CloudHub
@testable import EdgeHub
import Foundation
import NIOCore
import Testing
import TestSupport
import Transport

@Suite("Dispatch: coalescing, bounds, fairness", .serialized)
struct DispatchTests {
    @Test("an offline node receives the latest state of each key, not the history")
    func coalescingWhileOffline() async throws {
        let fixture = try await HubFixture()
        let tls = try fixture.issueCredentials(for: "edge-1")
        // The node has never connected: the hub queues for it all the same.
        for version in 1...50 {
            for key in ["a", "b"] {
                try await fixture.hub.send(hubMessage("update", "default/configmap/\(key)", content: "\(key)\(version)"), to: "edge-1", on: .state,
                                           delivery: .state(key: "configmap/\(key)"))
            }
        }
        let edge = try MessageChannel(configuration: ChannelConfiguration(localNodeID: "edge-1", peerNodeID: "cloudhub"))
        _ = try await QUICConnector(configuration: .init(port: fixture.ports.quic, serverName: "127.0.0.1", tls: tls), group: testGroup).connect(edge)
        #expect(try await collect(2, from: edge, lane: .state).map { String(buffer: $0.content) } == ["a50", "b50"])
        await #expect(throws: TestTimeout.self) { _ = try await collect(1, from: edge, lane: .state, timeout: .milliseconds(300)) }
        await edge.close()
        await fixture.stop()
    }

    @Test("a burst from the modules goes to the cloud; a message the channel refuses is the only one lost")
    func moduleBurstWithARefusedMessage() async throws {
        let fixture = try await HubFixture()
        _ = try fixture.issueCredentials(for: "edge-1")
        let bus = MessageBus()
        var configuration = fixture.edgeConfiguration("edge-1", token: nil)
        configuration.channel.limits.message.maxContentLength = 1024
        let hub = try EdgeHub(configuration: configuration, bus: bus, group: testGroup)
        let module = bus.register(module: "edged", group: "edged")
        // Queued before EdgeHub runs, so that they reach it as one burst.
        for (index, size) in [10, 2000, 10, 10].enumerated() {
            var message = makeMessage(index, size: size, resource: "default/nodestatus/edge-1")
            message.router.operation = "update"
            try await module.send(message, toGroup: EdgeHub.moduleGroup, on: .events)
        }
        hub.start()
        let received = try await nextMessages(3, from: fixture.hub)
        #expect(received.map { index(of: $0.message) } == [0, 2, 3])
        #expect(hub.statistics.refusedByChannel == 1 && hub.statistics.toCloud == 3)
        await hub.stop()
        await fixture.stop()
    }

    @Test("a node that does not read fills only its own queue; sends to other nodes go on")
    func slowNodeDoesNotDelayOthers() async throws {
        let fixture = try await HubFixture {
            $0.channel.maxQueuedBytesPerLane = 64 << 10
            $0.channel.maxOutboxMessages = 500
        }
        let slowFiles = try fixture.issueCredentials(for: "slow")
        let fastFiles = try fixture.issueCredentials(for: "fast")
        let slow = try MessageChannel(configuration: ChannelConfiguration(localNodeID: "slow", peerNodeID: "cloudhub", initialWindow: 16 << 10))
        let fast = try MessageChannel(configuration: ChannelConfiguration(localNodeID: "fast", peerNodeID: "cloudhub"))
        _ = try await WebSocketConnector(configuration: .init(port: fixture.ports.webSocket, serverName: "127.0.0.1", tls: slowFiles), group: testGroup).connect(slow)
        _ = try await WebSocketConnector(configuration: .init(port: fixture.ports.webSocket, serverName: "127.0.0.1", tls: fastFiles), group: testGroup).connect(fast)
        try await slow.waitUntilConnected()
        try await fast.waitUntilConnected()
        // Nobody reads `slow`: its window, then its queue bound fill, and the hub says so.
        var refusedAt: Int?
        for index in 0..<5_000 {
            if case .wouldBlock = try fixture.hub.trySend(hubMessage("update", "default/configmap/s", content: String(repeating: "x", count: 512)),
                                                          to: "slow", on: .state, delivery: .reliable) {
                refusedAt = index
                break
            }
        }
        #expect(refusedAt != nil, "the slow node's queue never filled")
        // The fast node is served at once.
        let started = ContinuousClock.now
        for index in 0..<200 {
            try await fixture.hub.send(hubMessage("update", "default/configmap/f", content: "f\(index)"), to: "fast", on: .state, delivery: .reliable)
        }
        #expect(try await collect(200, from: fast, lane: .state).count == 200)
        #expect(ContinuousClock.now - started < .seconds(5))
        await slow.close()
        await fast.close()
        await fixture.stop()
    }

    @Test("a node flooding the hub gets its turn like the others: another node's message is not stuck behind the flood")
    func inboundFairness() async throws {
        let fixture = try await HubFixture()
        let floodFiles = try fixture.issueCredentials(for: "flood")
        let quietFiles = try fixture.issueCredentials(for: "quiet")
        let flood = try MessageChannel(configuration: ChannelConfiguration(localNodeID: "flood", peerNodeID: "cloudhub"))
        let quiet = try MessageChannel(configuration: ChannelConfiguration(localNodeID: "quiet", peerNodeID: "cloudhub"))
        _ = try await QUICConnector(configuration: .init(port: fixture.ports.quic, serverName: "127.0.0.1", tls: floodFiles), group: testGroup).connect(flood)
        _ = try await QUICConnector(configuration: .init(port: fixture.ports.quic, serverName: "127.0.0.1", tls: quietFiles), group: testGroup).connect(quiet)
        try await flood.waitUntilConnected()
        try await quiet.waitUntilConnected()
        // The flood is waiting at the hub before its reader starts; then the quiet node speaks.
        try await flood.send(contentsOf: (0..<2_000).map { hubMessage("update", "default/nodestatus/flood", content: "f\($0)") }, on: .events, delivery: .reliable)
        #expect(await eventually { (fixture.hub.channel(of: "flood")?.statistics(for: .events).bufferedBytes ?? 0) > 50_000 })
        try await quiet.send(hubMessage("update", "default/nodestatus/quiet", content: "q"), on: .events, delivery: .reliable)
        #expect(await eventually { (fixture.hub.channel(of: "quiet")?.statistics(for: .events).bufferedBytes ?? 0) > 0 })
        // The channel counts a message before its observer tells the hub; wait for both lanes.
        #expect(await eventually { fixture.hub.readyInboundLaneCount == 2 })
        let first = try await nextMessages(10, from: fixture.hub)
        #expect(first.contains { $0.node == "quiet" }, "\(first.map(\.node))")
        await flood.close()
        await quiet.close()
        await fixture.stop()
    }

    @Test("reconnect delays double up to the maximum, each scaled by 0.5 to 1.5, and start again after a success")
    func backoff() {
        var backoff = ReconnectBackoff(initial: .milliseconds(100), maximum: .seconds(2))
        var generator = SystemRandomNumberGenerator()
        let bases: [Duration] = [.milliseconds(100), .milliseconds(200), .milliseconds(400), .milliseconds(800), .milliseconds(1600), .seconds(2), .seconds(2)]
        var delays: [Duration] = []
        for base in bases {
            let delay = backoff.nextDelay(using: &generator)
            delays.append(delay)
            #expect(delay >= base * 0.5 && delay <= base * 1.5, "\(delay) for base \(base)")
        }
        // Jitter: not all the same factor.
        #expect(Set(zip(delays, bases).map { Int(($0 / $1) * 1000) }).count > 1)
        backoff.reset()
        let again = backoff.nextDelay(using: &generator)
        #expect(again >= .milliseconds(50) && again <= .milliseconds(150))
    }
}
