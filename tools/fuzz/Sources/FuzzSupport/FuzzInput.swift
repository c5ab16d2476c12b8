/// A fuzz input split the way several targets read it: a first byte choosing a mode, a line up
/// to the first newline (a topic, a token), and the bytes after it (a payload, a body).
public struct FuzzInput {
    public var mode: UInt8
    public var line: [UInt8]
    public var rest: [UInt8]

    /// `nil` for an empty input.
    public init?(_ start: UnsafeRawPointer, _ count: Int) {
        let bytes = Array(UnsafeRawBufferPointer(start: start, count: count))
        guard let mode = bytes.first else { return nil }
        let tail = bytes.dropFirst()
        let newline = tail.firstIndex(of: UInt8(ascii: "\n")) ?? tail.endIndex
        self.mode = mode
        line = Array(tail[tail.startIndex..<newline])
        rest = newline < tail.endIndex ? Array(tail[(newline + 1)...]) : []
    }

    /// The line as text.
    public var lineText: String { String(decoding: line, as: UTF8.self) }
}
