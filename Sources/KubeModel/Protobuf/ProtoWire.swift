/// Protocol buffers' wire format: varints, tags and the four wire types proto2 uses.
enum ProtoWireType: UInt8, Sendable {
    case varint = 0
    case fixed64 = 1
    case lengthDelimited = 2
    case fixed32 = 5
}

/// Why protobuf bytes do not decode.
public struct ProtobufDecodingError: Error, Sendable, Equatable, CustomStringConvertible {
    public let message: String
    init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Reads fields from a message's bytes, front to back, never past its end.
struct ProtoReader {
    private let bytes: [UInt8]
    private(set) var index: Int
    private let end: Int

    init(_ bytes: [UInt8], from start: Int = 0, to end: Int? = nil) {
        self.bytes = bytes
        index = start
        self.end = end ?? bytes.count
    }

    var isAtEnd: Bool { index >= end }

    mutating func varint() throws(ProtobufDecodingError) -> UInt64 {
        var value: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard index < end else { throw ProtobufDecodingError("a varint runs past the end of its message") }
            let byte = bytes[index]
            index += 1
            guard shift < 64 else { throw ProtobufDecodingError("a varint is longer than 10 bytes") }
            value |= UInt64(byte & 0x7f) << shift
            if byte & 0x80 == 0 { return value }
            shift += 7
        }
    }

    /// The next field's number and wire type.
    mutating func tag() throws(ProtobufDecodingError) -> (number: Int, wireType: ProtoWireType) {
        let key = try varint()
        guard let wireType = ProtoWireType(rawValue: UInt8(key & 7)) else {
            throw ProtobufDecodingError("wire type \(key & 7) is not one proto2 messages use")
        }
        let number = key >> 3
        guard number > 0, number < 1 << 29 else { throw ProtobufDecodingError("field number \(number) is out of range") }
        return (Int(number), wireType)
    }

    mutating func fixed64() throws(ProtobufDecodingError) -> UInt64 {
        guard end - index >= 8 else { throw ProtobufDecodingError("a 64-bit value runs past the end of its message") }
        var value: UInt64 = 0
        for offset in 0..<8 { value |= UInt64(bytes[index + offset]) << (8 * UInt64(offset)) }
        index += 8
        return value
    }

    mutating func fixed32() throws(ProtobufDecodingError) -> UInt32 {
        guard end - index >= 4 else { throw ProtobufDecodingError("a 32-bit value runs past the end of its message") }
        var value: UInt32 = 0
        for offset in 0..<4 { value |= UInt32(bytes[index + offset]) << (8 * UInt32(offset)) }
        index += 4
        return value
    }

    /// The range of a length-delimited value, which the reader skips.
    mutating func lengthDelimited() throws(ProtobufDecodingError) -> Range<Int> {
        let length = try varint()
        guard length <= UInt64(end - index) else { throw ProtobufDecodingError("a length of \(length) bytes runs past the end of its message") }
        let range = index..<(index + Int(length))
        index += Int(length)
        return range
    }

    /// A reader of the bytes in `range` (a nested message).
    func nested(_ range: Range<Int>) -> ProtoReader { ProtoReader(bytes, from: range.lowerBound, to: range.upperBound) }

    func slice(_ range: Range<Int>) -> ArraySlice<UInt8> { bytes[range] }

    mutating func skip(_ wireType: ProtoWireType) throws(ProtobufDecodingError) {
        switch wireType {
        case .varint: _ = try varint()
        case .fixed64: _ = try fixed64()
        case .lengthDelimited: _ = try lengthDelimited()
        case .fixed32: _ = try fixed32()
        }
    }
}

/// Appends fields to a message's bytes.
struct ProtoWriter {
    var bytes: [UInt8] = []

    mutating func varint(_ value: UInt64) {
        var value = value
        while value >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: value) | 0x80)
            value >>= 7
        }
        bytes.append(UInt8(value))
    }

    mutating func tag(_ number: Int, _ wireType: ProtoWireType) {
        varint(UInt64(number) << 3 | UInt64(wireType.rawValue))
    }

    mutating func lengthDelimited(_ number: Int, _ content: some Collection<UInt8>) {
        tag(number, .lengthDelimited)
        varint(UInt64(content.count))
        bytes.append(contentsOf: content)
    }

    mutating func fixed64(_ number: Int, _ value: UInt64) {
        tag(number, .fixed64)
        for offset in 0..<8 { bytes.append(UInt8(truncatingIfNeeded: value >> (8 * UInt64(offset)))) }
    }

    mutating func fixed32(_ number: Int, _ value: UInt32) {
        tag(number, .fixed32)
        for offset in 0..<4 { bytes.append(UInt8(truncatingIfNeeded: value >> (8 * UInt32(offset)))) }
    }
}
