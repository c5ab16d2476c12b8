// DeviceTwin's input: MQTT publications from devices (topic routing as EventBus does it, then
// twin, state and membership documents) and Device messages from the cloud. The first byte
// chooses the source (even: a device, odd: the cloud); the topic or resource runs to the
// first newline and the payload follows.
@_spi(Fuzzing) import Node

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTwin(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let bytes = Array(UnsafeRawBufferPointer(start: start, count: count))
    guard let mode = bytes.first else { return 0 }
    let rest = bytes.dropFirst()
    let newline = rest.firstIndex(of: UInt8(ascii: "\n")) ?? rest.endIndex
    let topic = String(decoding: rest[rest.startIndex..<newline], as: UTF8.self)
    let payload = newline < rest.endIndex ? Array(rest[(newline + 1)...]) : []
    _ = TwinFuzzing.handle(topic: topic, payload: payload, fromCloud: mode & 1 == 1)
    return 0
}
