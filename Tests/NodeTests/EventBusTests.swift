import Foundation
import NIOCore
@testable import Node
import Testing
import TestSupport
import Transport

@Suite("EventBus bridges the broker and the modules", .serialized)
struct EventBusTests {
    @Test("device topics reach DeviceTwin with the topic base64-encoded; other topics go to the cloud as upload")
    func fromBroker() async throws {
        let broker = try await MosquittoBroker()
        defer { broker.stop() }
        let bus = MessageBus()
        let twin = bus.register(module: "twin", group: "twin")
        let hub = bus.register(module: "edgehub", group: "hub")
        let eventBus = try EventBus(configuration: .init(nodeName: "edge-1", port: broker.port), bus: bus)
        try await eventBus.start()
        let device = try MQTTClient()
        try await device.connect(host: "127.0.0.1", port: broker.port)
        // Subscriptions are asynchronous: publish until the first one arrives.
        let twinTopic = "$hw/events/device/dev-1/twin/update"
        let first = Task { try await collect(1, from: twin, lane: .events, timeout: .seconds(10)) }
        #expect(await eventually {
            _ = try? device.publish(twinTopic, payload: ByteBuffer(string: #"{"twin":{"temp":{"actual":{"value":"21"}}}}"#))
            return eventBus.statistics.fromBroker > 0
        })
        let twinMessage = try await first.value.first
        #expect(twinMessage?.router.resource == "JGh3L2V2ZW50cy9kZXZpY2UvZGV2LTEvdHdpbi91cGRhdGU=")
        #expect(twinMessage.map { String(decoding: Data(base64Encoded: $0.router.resource.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/"))!, as: UTF8.self) } == twinTopic)
        #expect(twinMessage.map { String(buffer: $0.content) } == #"{"twin":{"temp":{"actual":{"value":"21"}}}}"#)

        try device.publish("SYS/dis/upload_records", payload: ByteBuffer(string: "record-1"))
        let uploaded = try await collect(1, from: hub, lane: .events).first
        #expect(uploaded?.router.operation == "upload")
        #expect(uploaded?.router.group == "user")
        #expect(uploaded?.router.resource == "SYS/dis/upload_records")
        #expect(uploaded.map { String(buffer: $0.content) } == "record-1")
        device.disconnect()
        await eventBus.stop()
    }

    @Test("a module's publish reaches MQTT subscribers on the topic its resource names")
    func toBroker() async throws {
        let broker = try await MosquittoBroker()
        defer { broker.stop() }
        let bus = MessageBus()
        let twin = bus.register(module: "twin", group: "twin")
        let eventBus = try EventBus(configuration: .init(nodeName: "edge-1", port: broker.port), bus: bus)
        try await eventBus.start()
        let device = try MQTTClient()
        try await device.connect(host: "127.0.0.1", port: broker.port)
        let subscription = try device.subscribe("$hw/events/device/dev-1/twin/update/delta")
        #expect(await device.waitForAcknowledgement(subscription))
        try await twin.send(
            Message(router: MessageRouter(source: "twin", destination: "eventbus", group: "bus", operation: "publish",
                                          resource: "$hw/events/device/dev-1/twin/update/delta"), content: ByteBuffer(string: #"{"delta":{"temp":"25"}}"#)),
            on: .events, delivery: .reliable)
        let delivered = try await withTimeout(.seconds(10), "the delta on MQTT") { () -> MQTTMessage? in
            for await message in device.messages { return message }
            return nil
        }
        #expect(delivered?.topic == "$hw/events/device/dev-1/twin/update/delta")
        #expect(delivered.map { String(buffer: $0.payload) } == #"{"delta":{"temp":"25"}}"#)
        device.disconnect()
        await eventBus.stop()
    }

    @Test("after the broker restarts, EventBus reconnects and subscribes again")
    func resubscribes() async throws {
        let broker = try await MosquittoBroker()
        let bus = MessageBus()
        let twin = bus.register(module: "twin", group: "twin")
        let eventBus = try EventBus(configuration: .init(nodeName: "edge-1", port: broker.port), bus: bus)
        try await eventBus.start()
        broker.stop()
        #expect(await eventually { !eventBus.isConnected })
        let again = try await MosquittoBroker(port: broker.port)
        defer { again.stop() }
        #expect(await eventually(timeout: .seconds(15)) { eventBus.isConnected })
        let device = try MQTTClient()
        try await device.connect(host: "127.0.0.1", port: again.port)
        let arrival = Task { try await collect(1, from: twin, lane: .events, timeout: .seconds(10)) }
        #expect(await eventually {
            _ = try? device.publish("$hw/events/device/dev-2/state/update", payload: ByteBuffer(string: #"{"state":"online"}"#))
            return eventBus.statistics.fromBroker > 0
        })
        #expect(try await arrival.value.first.map { String(buffer: $0.content) } == #"{"state":"online"}"#)
        device.disconnect()
        await eventBus.stop()
    }

    @Test("a broker that is down at start is a clear error")
    func brokerDownAtStart() async throws {
        let broker = try await MosquittoBroker()
        broker.stop()
        var configuration = EventBus.Configuration(nodeName: "edge-1", port: broker.port)
        configuration.connectTimeout = .milliseconds(500)
        let eventBus = try EventBus(configuration: configuration, bus: MessageBus())
        await #expect(throws: MQTTError.connectTimedOut(host: "127.0.0.1", port: broker.port)) {
            try await eventBus.start()
        }
    }

    @Test("a broker that is down at start is waited for in the background, and what modules publish meanwhile is not lost")
    func brokerDownAtStartIsWaitedFor() async throws {
        let port = freeLoopbackPort()
        let bus = MessageBus()
        let twin = bus.register(module: "twin", group: "twin")
        var configuration = EventBus.Configuration(nodeName: "edge-1", port: port)
        configuration.connectTimeout = nil
        let eventBus = try EventBus(configuration: configuration, bus: bus)
        try await eventBus.start()
        #expect(!eventBus.isConnected)
        for index in 0..<3 {
            try await twin.send(
                Message(router: MessageRouter(source: "twin", destination: "eventbus", group: "bus", operation: "publish", resource: "$hw/events/device/d/twin/update/delta"),
                        content: ByteBuffer(string: "\(index)")),
                on: .events, delivery: .reliable)
        }
        // The device is subscribed (a persistent session on a broker started after EventBus).
        let broker = try await MosquittoBroker(port: port)
        defer { broker.stop() }
        let device = try MQTTClient(clientID: "device-d", cleanSession: false)
        try await device.connect(host: "127.0.0.1", port: port)
        #expect(await device.waitForAcknowledgement(try device.subscribe("$hw/events/device/d/twin/update/delta")))
        #expect(await eventually(timeout: .seconds(15)) { eventBus.isConnected })
        let payloads = try await withTimeout(.seconds(10), "three deltas") { () -> [String] in
            var received: [String] = []
            for await message in device.messages {
                received.append(String(buffer: message.payload))
                if received.count == 3 { break }
            }
            return received
        }
        #expect(payloads == ["0", "1", "2"])
        #expect(eventBus.statistics.publishFailures == 0)
        device.close()
        await eventBus.stop()
    }
}
