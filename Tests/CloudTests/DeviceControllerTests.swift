import Cloud
@testable import CloudHub
import EdgeHub
import Foundation
import KubeModel
import NIOCore
import Testing
import TestSupport
import Transport

/// The DeviceController between the embedded API server (driven by kubectl) and a real
/// CloudHub, with edges connected over the channel whose `twin` module is a bus endpoint.
@Suite(.serialized) struct DeviceControllerTests {
    @Test func aDeviceReportConvertsToDeviceStatusAndBadReportsAreRefused() throws {
        let report = try JSONValue(parsing: """
            {"device":"default/thermo","state":"online","lastOnline":"2026-11-23 10:00:00",
             "twin":{"temperature":{"actual":{"value":"21.5","metadata":{"timestamp":1700000000000}},"expected":{"value":"22"},"metadata":{"type":"float"}},
                     "mode":{"actual":{"value":"eco"}}}}
            """)
        let status = try #require(DeviceController.status(from: report))
        #expect(status.serialized == """
            {"state":"online","lastOnlineTime":"2026-11-23 10:00:00","twins":[{"propertyName":"mode","reported":{"value":"eco"}},\
            {"propertyName":"temperature","reported":{"value":"21.5","metadata":{"timestamp":"1700000000000","type":"float"}},"observedDesired":{"value":"22"}}]}
            """)
        for bad in [#"[1,2]"#, #"{"state":3}"#, #"{"twin":"x"}"#, #"{"twin":{"p":7}}"#, #"{"lastOnline":false}"#] {
            #expect(DeviceController.status(from: try JSONValue(parsing: bad)) == nil, "\(bad)")
        }
    }

    @Test func aDeviceGoesToItsNodeWithItsModelsTypesAndWhatTheNodeReportsReachesItsStatus() async throws {
        let server = try await EmbeddedServer()
        let fixture = try await HubFixture()
        let client = try KubeClient(configuration: try Kubeconfig.load(path: server.directory + "/kubeconfig"))
        let edgeController = EdgeController(client: client, hub: fixture.hub)
        let controller = DeviceController(client: client, hub: fixture.hub)
        edgeController.start()
        controller.start()
        let router = Task {
            for await incoming in fixture.hub.incoming where await edgeController.handle(incoming) == false { _ = await controller.handle(incoming) }
        }
        var edges: [EdgeHub] = []
        var twins: [String: BusEndpoint] = [:]
        for node in ["edge-1", "edge-2"] {
            let bus = MessageBus()
            twins[node] = bus.register(module: "twin", group: "twin")
            _ = bus.register(module: "metaManager", group: "meta")
            let edge = try EdgeHub(configuration: fixture.edgeConfiguration(node, token: try fixture.hub.makeToken()), bus: bus, group: testGroup)
            edge.start()
            edges.append(edge)
        }
        #expect(await eventually(timeout: .seconds(20)) {
            (try? await server.kubectl("get", "nodes", "-o", "name"))?.output.split(separator: "\n").count == 2
        })

        let applied = try await server.kubectl("apply", "-f", "@input", input: """
            apiVersion: devices.kubeedge.io/v1beta1
            kind: DeviceModel
            metadata: {name: thermometer}
            spec:
              protocol: modbus
              properties:
              - {name: temperature, type: FLOAT, accessMode: ReadWrite}
              - {name: mode, type: STRING, accessMode: ReadWrite}
            ---
            apiVersion: devices.kubeedge.io/v1beta1
            kind: Device
            metadata: {name: thermo}
            spec:
              deviceModelRef: {name: thermometer}
              nodeName: edge-1
              properties:
              - name: temperature
                desired: {value: "22"}
              - name: mode
                desired: {value: eco, metadata: {type: ENUM}}
            ---
            apiVersion: devices.kubeedge.io/v1beta1
            kind: Device
            metadata: {name: unbound}
            spec:
              deviceModelRef: {name: thermometer}
              nodeName: nowhere
            """)
        #expect(applied.status == 0, "\(applied.output)")
        let twin1 = try #require(twins["edge-1"])
        let twin2 = try #require(twins["edge-2"])

        // The bound device reaches its node's twin module, its types filled from the model
        // where the device names none; the unbound device goes nowhere. (The model and the
        // device are watched apart: when the device's event comes first, it goes without the
        // model's types, and an update with them follows.)
        func types(_ message: Message) -> [String] {
            let sent = try? JSONValue(parsing: String(buffer: message.content))
            return sent?[path: ["spec", "properties"]].elements.map { $0[path: ["desired", "metadata", "type"]]?.stringValue ?? "-" } ?? []
        }
        let first = try await Self.messages(from: twin1, until: { types($0) == ["FLOAT", "ENUM"] })
        #expect(first.first?.router.group == "twin" && first.first?.router.operation == "insert")
        #expect(first.allSatisfy { $0.router.resource == "default/device/thermo" } && first.dropFirst().allSatisfy { $0.router.operation == "update" })

        // A new desired value follows; the status the node reports does not echo back.
        let patched = try await server.kubectl("patch", "device", "thermo", "--type", "merge", "-p", """
            {"spec":{"properties":[{"name":"temperature","desired":{"value":"23"}},{"name":"mode","desired":{"value":"eco","metadata":{"type":"ENUM"}}}]}}
            """)
        #expect(patched.status == 0, "\(patched.output)")
        let update = try await Self.messages(from: twin1, until: { String(buffer: $0.content).contains(#""23""#) })
        #expect(update.count == 1 && update.first?.router.operation == "update")

        // The node reports the device: kubectl sees state and values in the status.
        let report = #"{"device":"default/thermo","state":"online","lastOnline":"2026-11-23 10:00:00","twin":{"temperature":{"actual":{"value":"22.5","metadata":{"timestamp":1}},"expected":{"value":"23"}}}}"#
        try await twin1.send(Message(router: MessageRouter(source: "twin", destination: EdgeHub.moduleName, group: "twin", operation: "update",
                                                           resource: "default/devicestatus/thermo"), content: ByteBuffer(string: report)), on: .state, delivery: .reliable)
        #expect(await eventually(timeout: .seconds(20)) {
            let got = try? await server.kubectl("get", "device", "thermo", "-o", #"jsonpath={.status.state}/{.status.twins[?(@.propertyName=="temperature")].reported.value}"#)
            return got?.output == "online/22.5"
        })

        // Reports the controller must not write: from another node, for an unknown device,
        // malformed. Each is dropped and counted; other resources are not its.
        func message(_ node: String, _ resource: String, _ content: String) -> NodeMessage {
            NodeMessage(node: node, lane: .state, message: Message(router: MessageRouter(source: "twin", group: "twin", operation: "update", resource: resource),
                                                                   content: ByteBuffer(string: content)))
        }
        let offline = #"{"state":"offline","twin":{}}"#
        #expect(await controller.handle(message("edge-2", "default/devicestatus/thermo", offline)))
        #expect(await controller.handle(message("edge-1", "default/devicestatus/ghost", offline)))
        #expect(await controller.handle(message("edge-1", "default/devicestatus/thermo", "{not json")))
        #expect(await controller.handle(message("edge-1", "default/podstatus/thermo", offline)) == false)
        // The write is counted once the API server has answered it, which may be after kubectl saw it.
        #expect(await eventually { controller.statistics.statusesWritten == 1 }, "\(controller.statistics)")
        var statistics = controller.statistics
        #expect(statistics.statusesWritten == 1 && statistics.statusesDropped == 3, "\(statistics)")
        #expect((try await server.kubectl("get", "device", "thermo", "-o", "jsonpath={.status.state}")).output == "online")

        // Moved to another node: deleted at the first, inserted at the second.
        let moved = try await server.kubectl("patch", "device", "thermo", "--type", "merge", "-p", #"{"spec":{"nodeName":"edge-2"}}"#)
        #expect(moved.status == 0, "\(moved.output)")
        let gone = try await collect(1, from: twin1, lane: .state)
        #expect(gone.first?.router.operation == "delete" && gone.first?.router.resource == "default/device/thermo")
        let arrived = try await collect(1, from: twin2, lane: .state)
        #expect(arrived.first?.router.operation == "insert" && arrived.first?.router.resource == "default/device/thermo")

        // Deleted: deleted at its node.
        let deleted = try await server.kubectl("delete", "device", "thermo")
        #expect(deleted.status == 0, "\(deleted.output)")
        let removed = try await collect(1, from: twin2, lane: .state)
        #expect(removed.first?.router.operation == "delete")
        // A send is counted once the hub has taken it, which may be after the node received it.
        #expect(await eventually { controller.statistics.deletesSent == 2 }, "\(controller.statistics)")
        statistics = controller.statistics
        #expect(statistics.devicesSent == 2 + first.count && statistics.deletesSent == 2 && statistics.failures == 0, "\(statistics)")
        #expect(twin1.pollMessage(on: .state) == nil && twin2.pollMessage(on: .state) == nil)

        router.cancel()
        for edge in edges { await edge.stop() }
        await controller.stop()
        await edgeController.stop()
        await fixture.stop()
        await server.server.stop()
        removeTemporaryDirectory(server.directory)
        removeTemporaryDirectory(fixture.directory)
    }

    /// The messages `endpoint` receives on the state lane up to and including the first one
    /// `matching`.
    static func messages(from endpoint: BusEndpoint, until matching: (Message) -> Bool) async throws -> [Message] {
        var received: [Message] = []
        while received.count < 10 {
            let next = try await collect(1, from: endpoint, lane: .state)
            received += next
            if next.contains(where: matching) { return received }
        }
        Issue.record("no matching message among \(received.map { "\($0.router.operation) \($0.router.resource)" })")
        return received
    }
}
