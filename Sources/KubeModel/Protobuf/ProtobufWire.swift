/// Writes protocol buffer messages field by field (the wire format: varints, length-delimited
/// fields, nested messages). The typed writers leave out fields with their default value, as
/// proto3 does (CRI); the `…Field` writers always write, as proto2 with presence needs
/// (Kubernetes' own messages).
package struct ProtobufWriter {
    package private(set) var bytes: [UInt8] = []

    package init(prefix: [UInt8] = []) { bytes = prefix }

    private mutating func varint(_ value: UInt64) {
        var value = value
        while value >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: value) | 0x80)
            value >>= 7
        }
        bytes.append(UInt8(value))
    }

    private mutating func key(_ field: Int, _ wireType: UInt64) { varint(UInt64(field) << 3 | wireType) }

    /// A varint field, written whatever its value.
    package mutating func varintField(_ field: Int, _ value: UInt64) {
        key(field, 0)
        varint(value)
    }

    /// A length-delimited field (bytes, string, nested message), written even when empty.
    package mutating func lengthDelimitedField(_ field: Int, _ value: some Collection<UInt8>) {
        key(field, 2)
        varint(UInt64(value.count))
        bytes.append(contentsOf: value)
    }

    /// A 64-bit little-endian field (`double`, `fixed64`).
    package mutating func fixed64Field(_ field: Int, _ value: UInt64) {
        key(field, 1)
        for shift in stride(from: 0, to: 64, by: 8) { bytes.append(UInt8(truncatingIfNeeded: value >> UInt64(shift))) }
    }

    /// A 32-bit little-endian field (`float`, `fixed32`).
    package mutating func fixed32Field(_ field: Int, _ value: UInt32) {
        key(field, 5)
        for shift in stride(from: 0, to: 32, by: 8) { bytes.append(UInt8(truncatingIfNeeded: value >> UInt32(shift))) }
    }

    /// An `int32`, `int64`, `uint32`, enum or `bool` field (negative numbers take ten bytes).
    package mutating func int(_ field: Int, _ value: Int64) {
        guard value != 0 else { return }
        key(field, 0)
        varint(UInt64(bitPattern: value))
    }

    package mutating func bool(_ field: Int, _ value: Bool) { int(field, value ? 1 : 0) }

    package mutating func bytes(_ field: Int, _ value: some Collection<UInt8>) {
        guard !value.isEmpty else { return }
        key(field, 2)
        varint(UInt64(value.count))
        bytes.append(contentsOf: value)
    }

    package mutating func string(_ field: Int, _ value: String) { bytes(field, Array(value.utf8)) }

    package mutating func strings(_ field: Int, _ values: [String]) {
        for value in values {
            key(field, 2)
            varint(UInt64(value.utf8.count))
            bytes.append(contentsOf: value.utf8)
        }
    }

    /// A length-delimited field whose content `build` writes in place (no buffer of its own):
    /// its length is written after it, in front of it, moving the content only when the
    /// length takes more than one byte.
    package mutating func lengthDelimitedField<Failure: Error>(_ field: Int, _ build: (inout ProtobufWriter) throws(Failure) -> Void) throws(Failure) {
        key(field, 2)
        let start = bytes.count
        bytes.append(0)
        try build(&self)
        let length = bytes.count - start - 1
        guard length >= 0x80 else {
            bytes[start] = UInt8(length)
            return
        }
        var prefix: [UInt8] = []
        var value = UInt64(length)
        while value >= 0x80 {
            prefix.append(UInt8(truncatingIfNeeded: value) | 0x80)
            value >>= 7
        }
        prefix.append(UInt8(value))
        bytes.replaceSubrange(start..<start + 1, with: prefix)
    }

    /// A nested message; written even when empty (presence matters for messages).
    package mutating func message(_ field: Int, _ build: (inout ProtobufWriter) -> Void) {
        var nested = ProtobufWriter()
        build(&nested)
        key(field, 2)
        varint(UInt64(nested.bytes.count))
        bytes.append(contentsOf: nested.bytes)
    }

    /// A `map<string, string>` field: one entry message per key, in key order.
    package mutating func map(_ field: Int, _ values: [String: String]) {
        for (name, value) in values.sorted(by: { $0.key < $1.key }) {
            message(field) {
                $0.string(1, name)
                $0.string(2, value)
            }
        }
    }
}

/// Reads the fields of one protocol buffer message. Unknown fields are skipped, so newer
/// runtimes that add fields still decode.
package struct ProtobufReader {
    /// One field as found: its number and value.
    package enum Value {
        case varint(UInt64)
        case bytes(ArraySlice<UInt8>)
        case fixed(UInt64)
    }

    private var bytes: ArraySlice<UInt8>

    package init(_ bytes: ArraySlice<UInt8>) { self.bytes = bytes }
    package init(_ bytes: [UInt8]) { self.bytes = bytes[...] }

    /// Whether every field was read.
    package var isAtEnd: Bool { bytes.isEmpty }

    private mutating func varint() throws(ProtobufDecodingError) -> UInt64 {
        var value: UInt64 = 0
        var shift: UInt64 = 0
        while let byte = bytes.popFirst() {
            guard shift < 64 else { throw ProtobufDecodingError("a varint is longer than ten bytes") }
            value |= UInt64(byte & 0x7F) << shift
            if byte < 0x80 { return value }
            shift += 7
        }
        throw ProtobufDecodingError("a varint is cut short")
    }

    private mutating func take(_ count: Int) throws(ProtobufDecodingError) -> ArraySlice<UInt8> {
        guard count >= 0, count <= bytes.count else {
            throw ProtobufDecodingError("a field of \(count) bytes runs past the message's \(bytes.count)")
        }
        let value = bytes.prefix(count)
        bytes = bytes.dropFirst(count)
        return value
    }

    private static func littleEndian(_ bytes: ArraySlice<UInt8>) -> UInt64 {
        var value: UInt64 = 0
        for (index, byte) in bytes.enumerated() { value |= UInt64(byte) << (8 * UInt64(index)) }
        return value
    }

    /// The next field, or `nil` at the end of the message.
    package mutating func next() throws(ProtobufDecodingError) -> (field: Int, value: Value)? {
        guard !bytes.isEmpty else { return nil }
        let key = try varint()
        let field = Int(truncatingIfNeeded: key >> 3)
        guard field > 0 else { throw ProtobufDecodingError("field number 0") }
        switch key & 7 {
        case 0: return (field, .varint(try varint()))
        case 1: return (field, .fixed(Self.littleEndian(try take(8))))
        case 2:
            let length = try varint()
            guard length <= UInt64(Int.max) else { throw ProtobufDecodingError("a length of \(length)") }
            return (field, .bytes(try take(Int(length))))
        case 5: return (field, .fixed(Self.littleEndian(try take(4))))
        case let other: throw ProtobufDecodingError("wire type \(other) of field \(field) is not supported")
        }
    }
}

extension ProtobufReader.Value {
    package var int64: Int64 {
        if case .varint(let value) = self { return Int64(bitPattern: value) }
        return 0
    }

    /// An `int32` (sent sign-extended to 64 bits).
    package var int32: Int32 { Int32(truncatingIfNeeded: int64) }

    package var string: String {
        if case .bytes(let value) = self { return String(decoding: value, as: UTF8.self) }
        return ""
    }

    package var data: [UInt8] {
        if case .bytes(let value) = self { return Array(value) }
        return []
    }

    /// The value as a nested message.
    package var message: ProtobufReader {
        if case .bytes(let value) = self { return ProtobufReader(value) }
        return ProtobufReader([])
    }
}

extension ProtobufReader {
    /// Reads a `map<string, string>` entry.
    package static func mapEntry(_ value: Value) throws(ProtobufDecodingError) -> (String, String) {
        var entry = value.message
        var key = ""
        var mapped = ""
        while let (field, value) = try entry.next() {
            if field == 1 { key = value.string } else if field == 2 { mapped = value.string }
        }
        return (key, mapped)
    }
}
