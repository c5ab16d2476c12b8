import Foundation
import NIOCore
@testable import Node
import Testing
import TestSupport

@Suite("MQTT client on libmosquitto against a real broker", .serialized)
struct MQTTClientTests {
    @Test("QoS 1 messages published by one client reach a wildcard subscriber in order")
    func publishAndSubscribe() async throws {
        let broker = try await MosquittoBroker()
        defer { broker.stop() }
        let subscriber = try MQTTClient(clientID: "sub-\(UUID().uuidString.prefix(8))")
        let publisher = try MQTTClient(clientID: "pub-\(UUID().uuidString.prefix(8))")
        try await subscriber.connect(host: "127.0.0.1", port: broker.port)
        try await publisher.connect(host: "127.0.0.1", port: broker.port)
        #expect(subscriber.isConnected && publisher.isConnected)
        let subscription = try subscriber.subscribe("$hw/events/device/+/twin/#", qos: 1)
        #expect(await subscriber.waitForAcknowledgement(subscription))
        var last: Int32 = 0
        for index in 0..<100 {
            last = try publisher.publish("$hw/events/device/dev-\(index % 3)/twin/update", payload: ByteBuffer(string: "{\"n\":\(index)}"), qos: 1)
        }
        // Not matched by the subscription.
        try publisher.publish("$hw/events/node/edge-1/membership/get", payload: ByteBuffer(string: "x"), qos: 1)
        #expect(await publisher.waitForAcknowledgement(last))
        let received = try await withTimeout(.seconds(10), "100 MQTT messages") {
            var received: [MQTTMessage] = []
            for await message in subscriber.messages {
                received.append(message)
                if received.count == 100 { break }
            }
            return received
        }
        #expect(received.map { String(buffer: $0.payload) } == (0..<100).map { "{\"n\":\($0)}" })
        #expect(received.map(\.topic) == (0..<100).map { "$hw/events/device/dev-\($0 % 3)/twin/update" })
        #expect(received.allSatisfy { $0.qos == 1 })
        subscriber.disconnect()
        publisher.disconnect()
    }

    @Test("a broker that is down gives a clear error, not a hang")
    func brokerDown() async throws {
        let broker = try await MosquittoBroker()
        let port = broker.port
        broker.stop()
        let client = try MQTTClient()
        await #expect(throws: MQTTError.connectTimedOut(host: "127.0.0.1", port: port)) {
            try await client.connect(host: "127.0.0.1", port: port, timeout: .milliseconds(500))
        }
        #expect(!client.isConnected)
        #expect(MQTTError.connectTimedOut(host: "127.0.0.1", port: port).description == "no answer from the MQTT broker at 127.0.0.1:\(port)")
    }

    @Test("the client reconnects by itself after the broker restarts")
    func reconnects() async throws {
        let broker = try await MosquittoBroker()
        let client = try MQTTClient(clientID: "re-\(UUID().uuidString.prefix(8))")
        try await client.connect(host: "127.0.0.1", port: broker.port)
        broker.stop()
        #expect(await eventually { !client.isConnected })
        // A new broker on the same port.
        let again = try await MosquittoBroker(port: broker.port)
        defer { again.stop() }
        #expect(await eventually(timeout: .seconds(15)) { client.isConnected })
        client.disconnect()
    }
}
