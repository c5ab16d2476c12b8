/// The first byte of every frame.
public enum FrameType: UInt8, Sendable, CaseIterable {
    case hello = 0x01
    case message = 0x02
    case ack = 0x03
    case credit = 0x04
    case ping = 0x05
    case pong = 0x06
    case goAway = 0x07
    case streamOpen = 0x08
    case streamData = 0x09
    case streamWindow = 0x0a
    case streamFinish = 0x0b
    case streamReset = 0x0c
}
