// DeviceTwin's input: MQTT publications from devices (topic routing as EventBus does it, then
// twin, state and membership documents) and Device messages from the cloud. The first byte
// chooses the source (even: a device, odd: the cloud); the topic or resource runs to the
// first newline and the payload follows.
import FuzzSupport
@_spi(Fuzzing) import Node

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTwin(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    guard let input = FuzzInput(start, count) else { return 0 }
    _ = TwinFuzzing.handle(topic: input.lineText, payload: input.rest, fromCloud: input.mode & 1 == 1)
    return 0
}
