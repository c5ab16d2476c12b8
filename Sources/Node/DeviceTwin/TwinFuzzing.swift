import NIOCore
import Transport

/// DeviceTwin's handling of one message, in memory, for the fuzz targets (`tools/fuzz`): what
/// a device publishes over MQTT (routed as EventBus routes it) or what the cloud sends, against
/// a table holding one device with a twin.
@_spi(Fuzzing)
public enum TwinFuzzing {
    /// Handles `payload` published on the MQTT `topic`, or, with `fromCloud`, sent by the cloud
    /// for `topic` as resource (`{namespace}/device/{name}`); how many MQTT publications it
    /// would answer with.
    public static func handle(topic: String, payload: [UInt8], fromCloud: Bool) -> Int {
        var device = DeviceRecord(namespace: "default", name: "thermo")
        device.twin["temperature"] = TwinProperty(expected: TwinValue(value: "22", timestamp: 1), actual: TwinValue(value: "21", timestamp: 1), type: "float")
        var devices = DeviceTable(["default/thermo": device])
        var work = TwinWork(now: 2, configuration: DeviceTwin.Configuration(nodeName: "edge-1"))
        let message: Message
        if fromCloud {
            message = Message(router: MessageRouter(source: "devicecontroller", group: MessageRouter.Group.twin, operation: MessageRouter.Operation.update,
                                                    resource: topic), content: ByteBuffer(bytes: payload))
        } else {
            message = EventBus.route(MQTTMessage(topic: topic, payload: ByteBuffer(bytes: payload), qos: 1, retain: false)).message
        }
        work.handle(message, devices: &devices)
        return work.publications.count
    }
}
