import CloudHub
import Foundation
import NIOCore
import Testing
import TestSupport
import Transport

@Suite("Many nodes on one hub", .serialized)
struct ScaleTests {
    /// Nodes in the test: 1,000 by default (`HUB_TEST_NODES` changes it).
    static let nodeCount = ProcessInfo.processInfo.environment["HUB_TEST_NODES"].flatMap(Int.init) ?? 1_000

    @Test("1,000 edge sessions on one hub each receive their own messages and no one else's")
    func thousandSessions() async throws {
        let fixture = try await HubFixture()
        let nodes = (0..<Self.nodeCount).map { "edge-\($0)" }
        var files: [String: TLSFiles] = [:]
        for node in nodes { files[node] = try fixture.issueCredentials(for: node) }
        // Half the nodes over QUIC, half over WebSocket; 32 handshakes at a time.
        var channels: [String: MessageChannel] = [:]
        var connections: [@Sendable () async -> Void] = []
        for batch in stride(from: 0, to: nodes.count, by: 32) {
            try await withThrowingTaskGroup(of: (String, MessageChannel, @Sendable () async -> Void).self) { group in
                for (offset, node) in nodes[batch..<min(batch + 32, nodes.count)].enumerated() {
                    let tls = files[node]!
                    let overQUIC = (batch + offset) % 2 == 0
                    group.addTask {
                        let channel = try MessageChannel(configuration: ChannelConfiguration(localNodeID: node, peerNodeID: "cloudhub"))
                        if overQUIC {
                            let connection = try await QUICConnector(
                                configuration: .init(port: fixture.ports.quic, serverName: "127.0.0.1", tls: tls), group: testGroup).connect(channel)
                            try await channel.waitUntilConnected()
                            return (node, channel, { await connection.drop() })
                        }
                        let connection = try await WebSocketConnector(
                            configuration: .init(port: fixture.ports.webSocket, serverName: "127.0.0.1", tls: tls), group: testGroup).connect(channel)
                        try await channel.waitUntilConnected()
                        return (node, channel, { await connection.drop() })
                    }
                }
                for try await (node, channel, drop) in group {
                    channels[node] = channel
                    connections.append(drop)
                }
            }
        }
        #expect(await eventually { fixture.hub.onlineNodes.count == nodes.count })
        #expect(nodes.filter { fixture.hub.connection(of: $0) == .quic }.count == nodes.count / 2)

        // Cloud → each node: two messages naming it.
        for node in nodes {
            for index in 0..<2 {
                try await fixture.hub.send(hubMessage("insert", "default/configmap/\(node)-\(index)", content: node), to: node, on: .state, delivery: .reliable)
            }
        }
        let all = channels
        try await withThrowingTaskGroup(of: (String, [String]).self) { group in
            for (node, channel) in all {
                group.addTask { (node, try await collect(2, from: channel, lane: .state).map { String(buffer: $0.content) }) }
            }
            for try await (node, contents) in group {
                #expect(contents == [node, node], "\(node) got \(contents)")
            }
        }
        // Each node → the cloud: its own status, which the hub attributes to it.
        let reader = Task { try await nextMessages(nodes.count, from: fixture.hub, timeout: .seconds(60)) }
        for (node, channel) in channels {
            try await channel.send(hubMessage("update", "default/nodestatus/\(node)", content: node), on: .state, delivery: .reliable)
        }
        let received = try await reader.value
        #expect(received.allSatisfy { $0.message.router.resource == "default/nodestatus/\($0.node)" && String(buffer: $0.message.content) == $0.node })
        #expect(Set(received.map(\.node)).count == nodes.count)
        // Nothing else arrived anywhere.
        try await Task.sleep(for: .milliseconds(100))
        #expect(channels.values.allSatisfy { $0.statistics(for: .state).bufferedBytes == 0 })
        #expect(fixture.hub.statistics.refusedMessages == 0)

        for drop in connections { await drop() }
        for channel in channels.values { await channel.close() }
        #expect(await eventually(timeout: .seconds(60)) { fixture.hub.onlineNodes.isEmpty })
        await fixture.stop()
    }
}
