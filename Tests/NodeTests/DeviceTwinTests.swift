import CloudHub
import EdgeHub
import Foundation
import NIOCore
@testable import Node
import Testing
import TestSupport
import Transport

/// A Device as DeviceController sends it: `devices.kubeedge.io/v1beta1` with desired values.
func deviceJSON(_ name: String, desired: [String: String], model: String = "thermometer") -> String {
    let properties = desired.sorted { $0.key < $1.key }.map { #"{"name":"\#($0.key)","desired":{"value":"\#($0.value)","metadata":{"type":"string"}}}"# }
    return #"{"apiVersion":"devices.kubeedge.io/v1beta1","kind":"Device","metadata":{"name":"\#(name)","namespace":"default","resourceVersion":"1"},"spec":{"deviceModelRef":{"name":"\#(model)"},"nodeName":"edge-1","properties":[\#(properties.joined(separator: ","))]}}"#
}

/// A device on MQTT: subscribes to its result topics and publishes its reports.
struct FakeDevice {
    let client: MQTTClient

    init(port: Int, subscriptions: [String]) async throws {
        client = try MQTTClient()
        try await client.connect(host: "127.0.0.1", port: port)
        for topic in subscriptions {
            let mid = try client.subscribe(topic)
            guard await client.waitForAcknowledgement(mid) else { throw TestTimeout(description: "no SUBACK for \(topic)") }
        }
    }

    func publish(_ topic: String, _ json: String) throws {
        _ = try client.publish(topic, payload: ByteBuffer(string: json))
    }

    /// The next message on any subscribed topic, decoded.
    func next(timeout: Duration = .seconds(10)) async throws -> (topic: String, json: [String: Any]) {
        let client = client
        let message = try await withTimeout(timeout, "an MQTT message") { () -> MQTTMessage? in
            for await message in client.messages { return message }
            return nil
        }
        guard let message else { throw TestTimeout(description: "the MQTT stream ended") }
        let json = (try? JSONSerialization.jsonObject(with: Data(message.payload.readableBytesView)) as? [String: Any]) ?? [:]
        return (message.topic, json)
    }

    /// Messages until one arrives on `topic`.
    func next(on topic: String) async throws -> [String: Any] {
        while true {
            let message = try await next()
            if message.topic == topic { return message.json }
        }
    }
}

/// Broker, EventBus and DeviceTwin on one bus; the cloud is whatever the test registers.
struct TwinNode {
    let broker: MosquittoBroker
    let bus = MessageBus()
    let eventBus: EventBus
    let twin: DeviceTwin
    let store: DeviceStore

    init(directory: String, broker: MosquittoBroker? = nil, configuration: DeviceTwin.Configuration = .init(nodeName: "edge-1")) async throws {
        let started: MosquittoBroker
        if let broker { started = broker } else { started = try await MosquittoBroker() }
        self.broker = started
        let broker = started
        store = try DeviceStore(path: directory + "/devices.db")
        twin = DeviceTwin(configuration: configuration, store: store, bus: bus)
        eventBus = try EventBus(configuration: .init(nodeName: "edge-1", port: broker.port), bus: bus)
        twin.start()
        try await eventBus.start()
    }

    func stop() async {
        await eventBus.stop()
        await twin.stop()
    }
}

@Suite(.serialized) struct DeviceTwinTests {
    @Test func desiredValuesReachTheDeviceAsDeltasAndReportedValuesReachTheCloudOnce() async throws {
        let fixture = try await HubFixture()
        _ = try fixture.issueCredentials(for: "edge-1")
        let node = try await TwinNode(directory: fixture.directory)
        defer { node.broker.stop() }
        let hub = try EdgeHub(configuration: fixture.edgeConfiguration("edge-1", token: nil), bus: node.bus, group: testGroup)
        hub.start()
        let device = try await FakeDevice(port: node.broker.port, subscriptions: [
            "$hw/events/device/thermo/twin/update/delta", "$hw/events/device/thermo/twin/update/result",
            "$hw/events/node/edge-1/membership/updated",
        ])

        // The cloud binds the device with a desired temperature: membership, then the delta.
        let bind = Message(router: MessageRouter(source: "devicecontroller", group: "twin", operation: "insert", resource: "default/device/thermo"),
                           content: ByteBuffer(string: deviceJSON("thermo", desired: ["temperature": "25"])))
        try await fixture.hub.send(bind, to: "edge-1", on: .state, delivery: .reliable)
        let membership = try await device.next(on: "$hw/events/node/edge-1/membership/updated")
        #expect((membership["added_devices"] as? [[String: Any]])?.first?["id"] as? String == "default/thermo")
        let delta = try await device.next(on: "$hw/events/device/thermo/twin/update/delta")
        #expect(delta["delta"] as? [String: String] == ["temperature": "25"])
        #expect(await eventually { fixture.hub.channel(of: "edge-1")?.statistics(for: .state).unacknowledged == 0 })

        // The device reports 24: the result comes back and the cloud gets the report exactly once.
        try device.publish("$hw/events/device/thermo/twin/update", #"{"event_id":"e-1","twin":{"temperature":{"actual":{"value":"24"}}}}"#)
        let result = try await device.next(on: "$hw/events/device/thermo/twin/update/result")
        #expect(result["code"] as? Int == 200 && result["event_id"] as? String == "e-1")
        let reports = try await nextMessages(1, from: fixture.hub)
        #expect(reports.first?.message.router.resource == "default/devicestatus/thermo")
        let report = try JSONDecoder().decode(DeviceReport.self, from: Data(reports[0].message.content.readableBytesView))
        #expect(report.twin["temperature"]?.actual?.value == "24")
        #expect(report.twin["temperature"]?.expected?.value == "25")
        // Still a delta (24 ≠ 25), and nothing else reaches the cloud.
        #expect(try await device.next(on: "$hw/events/device/thermo/twin/update/delta")["delta"] as? [String: String] == ["temperature": "25"])
        let extra = Task { try await nextMessages(1, from: fixture.hub, timeout: .seconds(1)) }
        #expect(await (try? extra.value) == nil)
        #expect(fixture.hub.statistics.receivedMessages == 1)

        device.client.close()
        await hub.stop()
        await node.stop()
        await fixture.stop()
    }

    @Test func badDeviceMessagesGetAReasonOnTheResultTopic() async throws {
        let directory = makeTemporaryDirectory()
        defer { removeTemporaryDirectory(directory) }
        let node = try await TwinNode(directory: directory, configuration: .init(nodeName: "edge-1", maxPayloadBytes: 512))
        defer { node.broker.stop() }
        let cloud = node.bus.register(module: "edgehub", group: "hub")
        let bind = Message(router: MessageRouter(source: "devicecontroller", group: "twin", operation: "insert", resource: "default/device/lamp"),
                           content: ByteBuffer(string: deviceJSON("lamp", desired: ["power": "on"])))
        try await node.bus.register(module: "test-cloud", group: "test").send(bind, toGroup: "twin", on: .state)
        #expect(await eventually { node.store.device("lamp") != nil })
        let device = try await FakeDevice(port: node.broker.port, subscriptions: [
            "$hw/events/device/lamp/twin/update/result", "$hw/events/device/ghost/twin/update/result", "$hw/events/device/lamp/state/update/result",
        ])
        let lamp = "$hw/events/device/lamp/twin/update"

        try device.publish(lamp, #"{"event_id":"bad","twin":{"power":"#)
        var result = try await device.next(on: lamp + "/result")
        #expect(result["code"] as? Int == 400 && (result["reason"] as? String)?.contains("malformed twin update") == true)

        try device.publish("$hw/events/device/ghost/twin/update", #"{"event_id":"g","twin":{"power":{"actual":{"value":"on"}}}}"#)
        result = try await device.next(on: "$hw/events/device/ghost/twin/update/result")
        #expect(result["code"] as? Int == 404 && result["event_id"] as? String == "g")

        try device.publish(lamp, #"{"event_id":"big","twin":{"power":{"actual":{"value":"\#(String(repeating: "x", count: 600))"}}}}"#)
        result = try await device.next(on: lamp + "/result")
        #expect(result["code"] as? Int == 400 && (result["reason"] as? String)?.contains("over the limit of 512") == true)

        try device.publish(lamp, #"{"event_id":"v1","twin":{"power":{"actual":{"value":"off"}}}}"#)
        #expect(try await device.next(on: lamp + "/result")["code"] as? Int == 200)
        try device.publish(lamp, #"{"event_id":"old","twin":{"power":{"actual":{"value":"on"},"actual_version":{"cloud":0,"edge":0}}}}"#)
        result = try await device.next(on: lamp + "/result")
        #expect(result["code"] as? Int == 409)

        try device.publish("$hw/events/device/lamp/state/update", #"{"state":"sleeping"}"#)
        #expect(try await device.next(on: "$hw/events/device/lamp/state/update/result")["code"] as? Int == 400)
        #expect(node.twin.statistics.refused == 5)
        // Only the accepted report went to the cloud, and the refused ones changed nothing.
        let reports = try await collect(1, from: cloud, lane: .state)
        #expect(reports.first?.router.resource == "default/devicestatus/lamp")
        #expect(node.store.device("lamp")?.twin["power"]?.actual?.value == "off")
        device.client.close()
        await node.stop()
    }

    @Test func twinsSurviveARestart() async throws {
        let directory = makeTemporaryDirectory()
        defer { removeTemporaryDirectory(directory) }
        var node: TwinNode? = try await TwinNode(directory: directory)
        let broker = node!.broker
        defer { broker.stop() }
        let cloudSide = node!.bus.register(module: "test-cloud", group: "test")
        for name in ["a", "b"] {
            let bind = Message(router: MessageRouter(source: "devicecontroller", group: "twin", operation: "insert", resource: "default/device/\(name)"),
                               content: ByteBuffer(string: deviceJSON(name, desired: ["level": "1"])))
            try await cloudSide.send(bind, toGroup: "twin", on: .state)
        }
        #expect(await eventually { node!.store.count == 2 })
        let device = try await FakeDevice(port: broker.port, subscriptions: ["$hw/events/device/a/twin/update/result"])
        for value in 1...5 {
            try device.publish("$hw/events/device/a/twin/update", #"{"event_id":"\#(value)","twin":{"level":{"actual":{"value":"\#(value)"}}}}"#)
        }
        for _ in 1...5 { _ = try await device.next(on: "$hw/events/device/a/twin/update/result") }
        #expect(node!.store.device("a")?.twin["level"]?.actual?.value == "5")
        device.client.close()
        await node!.stop()
        node = nil

        // Restarted from the same file: the devices and their twins are still there.
        let reopened = try DeviceStore(path: directory + "/devices.db")
        #expect(reopened.devices.map(\.id) == ["default/a", "default/b"])
        let level = reopened.device("default/a")?.twin["level"]
        #expect(level?.actual?.value == "5" && level?.expected?.value == "1")
        #expect(level?.actualVersion?.edge == 5 && level?.expectedVersion?.cloud == 1)
        #expect(reopened.device("a")?.attributes["deviceModel"] == "thermometer")
    }

    @Test func reportsWaitingForTheCloudCoalescePerDevice() async throws {
        let fixture = try await HubFixture()
        let node = try await TwinNode(directory: fixture.directory)
        defer { node.broker.stop() }
        // EdgeHub cannot reach the cloud yet (no credentials): reports queue in its channel.
        let hub = try EdgeHub(configuration: fixture.edgeConfiguration("edge-1", token: nil), bus: node.bus, group: testGroup)
        hub.start()
        let cloudSide = node.bus.register(module: "test-cloud", group: "test")
        for name in ["a", "b"] {
            let bind = Message(router: MessageRouter(source: "devicecontroller", group: "twin", operation: "insert", resource: "default/device/\(name)"),
                               content: ByteBuffer(string: deviceJSON(name, desired: ["level": "0"])))
            try await cloudSide.send(bind, toGroup: "twin", on: .state)
        }
        #expect(await eventually { node.store.count == 2 })
        let device = try await FakeDevice(port: node.broker.port, subscriptions: ["$hw/events/device/+/twin/update/result"])
        for value in 1...5 {
            for name in ["a", "b"] {
                try device.publish("$hw/events/device/\(name)/twin/update", #"{"twin":{"level":{"actual":{"value":"\#(name)\#(value)"}}}}"#)
                _ = try await device.next()
            }
        }
        #expect(await eventually { node.twin.statistics.reports == 10 })
        #expect(await eventually { hub.channel.statistics(for: .state).unacknowledged == 2 })
        // The node gets its certificate; the cloud receives one report per device, the latest.
        // (The devices were bound from inside the node here, so the hub is told they are its.)
        for name in ["a", "b"] { fixture.hub.grant(EdgeObjectKey(kind: "device", namespace: "default", name: name), to: "edge-1") }
        _ = try fixture.issueCredentials(for: "edge-1")
        let reports = try await nextMessages(2, from: fixture.hub)
        let levels = try reports.map { try JSONDecoder().decode(DeviceReport.self, from: Data($0.message.content.readableBytesView)).twin["level"]?.actual?.value }
        #expect(Set(levels.compactMap { $0 }) == ["a5", "b5"])
        let extra = Task { try await nextMessages(1, from: fixture.hub, timeout: .seconds(1)) }
        #expect(await (try? extra.value) == nil)
        device.client.close()
        await hub.stop()
        await node.stop()
        await fixture.stop()
    }

    @Test func aFailedWriteLeavesTheDevicesInMemoryAsTheyWere() async throws {
        let directory = makeTemporaryDirectory()
        defer { removeTemporaryDirectory(directory) }
        let store = try DeviceStore(path: directory + "/devices.db", maxSizeBytes: 128 * 1024)
        let description = String(repeating: "d", count: 6000)
        var stored = 0
        var failure: DeviceTwinError?
        for index in 0..<100 {
            do {
                try await store.update { devices in
                    let id = "default/dev-\(index)"
                    devices[id] = DeviceRecord(namespace: "default", name: "dev-\(index)", description: description)
                    // A second device renamed in the same update must be undone too.
                    if index > 0 { devices["default/dev-0"]?.state = "online-\(index)" }
                    return ([DeviceChange(id: id, device: true), DeviceChange(id: "default/dev-0", device: true)], ())
                }
                stored += 1
            } catch {
                failure = error
                break
            }
        }
        #expect(failure != nil && stored > 3 && stored < 100)
        #expect(store.count == stored)
        #expect(store.device("dev-\(stored)") == nil)
        #expect(store.device("dev-0")?.state == (stored > 1 ? "online-\(stored - 1)" : "unknown"))
        // The writer's working copy was put back too: the next update starts from what is stored.
        let committed = stored
        let working = try await store.update { devices in
            ([], (devices["default/dev-\(committed)"] == nil, devices["default/dev-0"]?.state))
        }
        #expect(working.0)
        #expect(working.1 == (stored > 1 ? "online-\(stored - 1)" : "unknown"))
        let reopened = try DeviceStore(path: directory + "/devices.db")
        #expect(reopened.devices == store.devices)
    }
}
