import NIOCore

/// Writes DeviceTwin's documents straight into a buffer, keys in a fixed order. Every update a
/// device reports produces several documents (result, document, delta, report), and Foundation's
/// `JSONEncoder` spent most of DeviceTwin's time on them.
struct TwinJSON {
    private(set) var buffer: ByteBuffer
    private var needsComma: [Bool] = []

    init(capacity: Int = 256) {
        buffer = ByteBuffer()
        buffer.reserveCapacity(capacity)
    }

    mutating func object(_ body: (inout TwinJSON) -> Void) {
        separate()
        buffer.writeInteger(UInt8(ascii: "{"))
        needsComma.append(false)
        body(&self)
        needsComma.removeLast()
        buffer.writeInteger(UInt8(ascii: "}"))
    }

    mutating func array(_ body: (inout TwinJSON) -> Void) {
        separate()
        buffer.writeInteger(UInt8(ascii: "["))
        needsComma.append(false)
        body(&self)
        needsComma.removeLast()
        buffer.writeInteger(UInt8(ascii: "]"))
    }

    /// Writes `"key":` inside an object; the value follows.
    mutating func key(_ key: String) {
        separate()
        writeString(key)
        buffer.writeInteger(UInt8(ascii: ":"))
        needsComma[needsComma.count - 1] = false
    }

    mutating func string(_ value: String) {
        separate()
        writeString(value)
    }

    mutating func number(_ value: Int64) {
        separate()
        buffer.writeString(String(value))
    }

    mutating func bool(_ value: Bool) {
        separate()
        buffer.writeString(value ? "true" : "false")
    }

    mutating func null() {
        separate()
        buffer.writeString("null")
    }

    mutating func field(_ name: String, _ value: String) {
        key(name)
        string(value)
    }

    mutating func field(_ name: String, _ value: Int64) {
        key(name)
        number(value)
    }

    private mutating func separate() {
        guard !needsComma.isEmpty else { return }
        if needsComma[needsComma.count - 1] { buffer.writeInteger(UInt8(ascii: ",")) }
        needsComma[needsComma.count - 1] = true
    }

    private mutating func writeString(_ value: String) {
        buffer.writeInteger(UInt8(ascii: "\""))
        var plainStart = value.utf8.startIndex
        let utf8 = value.utf8
        var index = utf8.startIndex
        while index != utf8.endIndex {
            let byte = utf8[index]
            if byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") || byte < 0x20 {
                buffer.writeBytes(utf8[plainStart..<index])
                switch byte {
                case UInt8(ascii: "\""): buffer.writeString("\\\"")
                case UInt8(ascii: "\\"): buffer.writeString("\\\\")
                case 0x0A: buffer.writeString("\\n")
                case 0x0D: buffer.writeString("\\r")
                case 0x09: buffer.writeString("\\t")
                default:
                    let hex = Array("0123456789abcdef".utf8)
                    buffer.writeString("\\u00")
                    buffer.writeInteger(hex[Int(byte >> 4)])
                    buffer.writeInteger(hex[Int(byte & 0xF)])
                }
                plainStart = utf8.index(after: index)
            }
            index = utf8.index(after: index)
        }
        buffer.writeBytes(utf8[plainStart..<utf8.endIndex])
        buffer.writeInteger(UInt8(ascii: "\""))
    }

    /// The written bytes as a string (store columns).
    var text: String { String(buffer: buffer) }
}

extension TwinValue {
    func write(to json: inout TwinJSON) {
        json.object { json in
            if let value { json.field("value", value) }
            if let timestamp = metadata?.timestamp {
                json.key("metadata")
                json.object { $0.field("timestamp", timestamp) }
            }
        }
    }
}

extension TwinVersion {
    func write(to json: inout TwinJSON) {
        json.object { json in
            json.field("cloud", cloud)
            json.field("edge", edge)
        }
    }
}

extension TwinProperty {
    func write(to json: inout TwinJSON) {
        json.object { json in
            if let expected {
                json.key("expected")
                expected.write(to: &json)
            }
            if let actual {
                json.key("actual")
                actual.write(to: &json)
            }
            if let optional {
                json.key("optional")
                json.bool(optional)
            }
            if let type = metadata?.type {
                json.key("metadata")
                json.object { $0.field("type", type) }
            }
            if let expectedVersion {
                json.key("expected_version")
                expectedVersion.write(to: &json)
            }
            if let actualVersion {
                json.key("actual_version")
                actualVersion.write(to: &json)
            }
        }
    }
}

extension TwinJSON {
    /// `"twin": {name: property, ...}`, names sorted.
    mutating func twin(_ twin: [String: TwinProperty], key: String = "twin") {
        self.key(key)
        object { json in
            for name in twin.keys.sorted() {
                json.key(name)
                twin[name]!.write(to: &json)
            }
        }
    }

    /// The opening fields every DeviceTwin document has.
    mutating func event(_ eventID: String, _ timestamp: Int64) {
        field("event_id", eventID)
        field("timestamp", timestamp)
    }
}
