import CloudHub
import EdgeHub
import Foundation
import NIOCore
import Testing
import TestSupport
import Transport

@Suite("Reconnect storms", .serialized)
struct StormTests {
    /// Reliable messages each way: 2,000 by default (`HUB_STORM_MESSAGES` for a longer soak).
    static let messageCount = ProcessInfo.processInfo.environment["HUB_STORM_MESSAGES"].flatMap(Int.init) ?? 2_000

    @Test("through disconnect/reconnect storms and QUIC/WebSocket switches every reliable message arrives exactly once, in order")
    func storm() async throws {
        let fixture = try await HubFixture()
        let gate = try await UDPGate(target: fixture.ports.quic, open: true)
        var configuration = fixture.edgeConfiguration("edge-1", token: try fixture.hub.makeToken())
        configuration.quicPort = gate.port
        configuration.quicHandshakeTimeout = .milliseconds(500)
        configuration.quicRetryInterval = .milliseconds(300)
        configuration.initialBackoff = .milliseconds(10)
        configuration.maxBackoff = .milliseconds(100)
        let bus = MessageBus()
        let meta = bus.register(module: "metaManager", group: "meta")
        let edge = try EdgeHub(configuration: configuration, bus: bus, group: testGroup)
        edge.start()
        #expect(await eventually { edge.backend == .quic }, "\(edge.lastError ?? "")")
        let count = Self.messageCount
        // The cloud gives the node the objects it will report on.
        for index in 0..<count { fixture.hub.grant(EdgeObjectKey(kind: "pod", namespace: "default", name: "p\(index)"), to: "edge-1") }

        let toEdge = Task {
            for index in 0..<count {
                try await fixture.hub.send(hubMessage("update", "default/configmap/c\(index)", content: "m\(index)"), to: "edge-1", on: .state, delivery: .reliable)
                // Paced, so that traffic flows through the whole storm.
                try await Task.sleep(for: .milliseconds(1))
            }
        }
        let toCloud = Task {
            for index in 0..<count {
                try await meta.send(
                    Message(router: MessageRouter(source: "metaManager", destination: EdgeHub.moduleName, group: "resource", operation: "update",
                                                  resource: "default/podstatus/p\(index)"), content: ByteBuffer(string: "m\(index)")),
                    on: .events, delivery: .reliable)
                try await Task.sleep(for: .milliseconds(1))
            }
        }
        let atModule = Task { try await collect(count, from: meta, lane: .state, timeout: .seconds(120)) }
        let atCloud = Task { try await nextMessages(count, from: fixture.hub, timeout: .seconds(120)) }

        // The storm: connections dropped every 20–80 ms, and UDP blocked now and then so the
        // edge moves between QUIC and WebSocket.
        let storm = Task {
            var drops = 0
            var round = 0
            while !Task.isCancelled {
                // Each drop breaks a live connection.
                _ = await eventually { edge.backend != nil || Task.isCancelled }
                try? await Task.sleep(for: .milliseconds(Int.random(in: 20...80)))
                round += 1
                // UDP blocked for 12 of every 20 rounds (longer than the QUIC handshake timeout).
                gate.setOpen(round % 20 >= 12)
                await edge.dropConnection()
                drops += 1
            }
            return drops
        }
        let delivered = try await atModule.value
        let received = try await atCloud.value
        storm.cancel()
        let drops = await storm.value
        gate.setOpen(true)
        try await toEdge.value
        try await toCloud.value

        #expect(delivered.map { String(buffer: $0.content) } == (0..<count).map { "m\($0)" })
        #expect(received.map { String(buffer: $0.message.content) } == (0..<count).map { "m\($0)" })
        // Nothing arrives twice after the storm either.
        #expect(await eventually { edge.backend != nil })
        await #expect(throws: TestTimeout.self) { _ = try await collect(1, from: meta, lane: .state, timeout: .milliseconds(500)) }
        await #expect(throws: TestTimeout.self) { _ = try await nextMessages(1, from: fixture.hub, timeout: .milliseconds(500)) }
        let statistics = edge.statistics
        print("storm: \(drops) drops, \(statistics.quicConnections) QUIC and \(statistics.webSocketConnections) WebSocket connections, \(count) messages each way")
        #expect(drops >= 10)
        // A drop may land on a connection already dead and not yet noticed, so fewer
        // connections than drops.
        #expect(statistics.quicConnections + statistics.webSocketConnections >= 6)
        #expect(statistics.quicConnections >= 2)
        #expect(statistics.webSocketConnections >= 1)
        await edge.stop()
        await gate.close()
        await fixture.stop()
    }
}
