import Foundation
import NIOCore
import Node
import Synchronization
import Node
import Testing
import TestSupport

extension EndToEndTests {
    /// The device path: kubectl → cloudcore's DeviceController → the edge's DeviceTwin → a device
    /// on the edge's mosquitto, and the device's report back to the Device's status.
    @Test func aDevicesDesiredValueReachesItOverMQTTAndItsReportedValueReachesKubectl() async throws {
        let cluster = try await EdgeCluster()
        defer { cluster.end() }
        let cloud = cluster.cloud
        _ = try await cluster.addEdge("e2e-devices")
        #expect(await eventually(timeout: .seconds(30)) {
            await cloud.jsonPath("{.status.conditions[?(@.type==\"Ready\")].status}", of: "node", "e2e-devices") == "True"
        }, "\(cloud.log)")

        // The device: an MQTT client on the edge's broker, listening for its twin's delta.
        let device = try MQTTClient()
        defer { device.close() }
        try await device.connect(host: "127.0.0.1", port: cluster.broker.port)
        let subscription = try device.subscribe("$hw/events/device/thermostat/twin/update/delta")
        #expect(await device.waitForAcknowledgement(subscription))
        let inbox = Mutex<[MQTTMessage]>([])
        let reader = Task { for await message in device.messages { inbox.withLock { $0.append(message) } } }
        defer { reader.cancel() }

        try await cloud.apply("""
            apiVersion: devices.kubeedge.io/v1beta1
            kind: DeviceModel
            metadata: {name: thermostat-model, namespace: default}
            spec:
              protocol: modbus
              properties:
              - {name: temperature, type: FLOAT, accessMode: ReadWrite}
            ---
            apiVersion: devices.kubeedge.io/v1beta1
            kind: Device
            metadata: {name: thermostat, namespace: default}
            spec:
              deviceModelRef: {name: thermostat-model}
              nodeName: e2e-devices
              properties:
              - name: temperature
                desired: {value: "22.5"}

            """)

        // The desired value arrives as the delta of the device's twin.
        #expect(await eventually(timeout: .seconds(30)) { inbox.withLock { $0.count } >= 1 }, "\(cloud.log)")
        let delta = try #require(inbox.withLock { $0.first })
        let deltaBody = try #require(try JSONSerialization.jsonObject(with: Data(delta.payload.readableBytesView)) as? [String: Any])
        #expect((deltaBody["delta"] as? [String: Any])?["temperature"] as? String == "22.5", "\(deltaBody)")

        // The device reports what it measures: kubectl shows it in the Device's status.
        let report = #"{"event_id":"r1","timestamp":1,"twin":{"temperature":{"actual":{"value":"21.8"}}}}"#
        let published = try device.publish("$hw/events/device/thermostat/twin/update", payload: ByteBuffer(string: report))
        #expect(await device.waitForAcknowledgement(published))
        #expect(await eventually(timeout: .seconds(30)) {
            await cloud.jsonPath("{.status.twins[?(@.propertyName==\"temperature\")].reported.value}", of: "device", "thermostat") == "21.8"
        }, "\(cloud.log)")
        let yaml = try await cloud.kubectl("get", "device", "thermostat", "-o", "yaml")
        #expect(yaml.contains("value: \"21.8\"") && yaml.contains("observedDesired"), "\(yaml)")

        // A new desired value reaches the device too.
        _ = try await cloud.kubectl("patch", "device", "thermostat", "--type", "merge", "-p",
                                #"{"spec":{"properties":[{"name":"temperature","desired":{"value":"19"}}]}}"#)
        #expect(await eventually(timeout: .seconds(30)) {
            inbox.withLock { $0.contains { String(buffer: $0.payload).contains(#""temperature":"19""#) } }
        }, "\(inbox.withLock { $0.map { String(buffer: $0.payload) } })")
        #expect(await cloud.metric("cloudcore_devicecontroller_statuses_written_total").map { $0 >= 1 } == true)
    }
}
