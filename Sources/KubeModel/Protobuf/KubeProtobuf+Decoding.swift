extension KubeProtobuf {
    /// The JSON form of a message of type `type` (a full message name).
    public func json(fromMessage bytes: [UInt8], type: String) throws(ProtobufDecodingError) -> JSONValue {
        guard let message = schema.messages[type] else { throw ProtobufDecodingError("unknown message type \(type)") }
        return try decode(ProtoReader(bytes), as: message, depth: 0)
    }

    private static let maxDepth = 100

    private func decode(_ reader: ProtoReader, as message: KubeProtoSchema.Message, depth: Int) throws(ProtobufDecodingError) -> JSONValue {
        guard depth < Self.maxDepth else { throw ProtobufDecodingError("messages nest deeper than \(Self.maxDepth)") }
        if let special = try decodeSpecial(reader, as: message, depth: depth) { return special }
        var values: [JSONValue?] = Array(repeating: nil, count: message.fields.count)
        var reader = reader
        while !reader.isAtEnd {
            let (number, wireType) = try reader.tag()
            guard let index = message.fieldIndexByNumber[number] else {
                try reader.skip(wireType)
                continue
            }
            let field = message.fields[index]
            switch field.type {
            case .map(let keyType, let valueType):
                guard wireType == .lengthDelimited else { throw mismatch(field, in: message) }
                var entry = reader.nested(try reader.lengthDelimited())
                var key: JSONValue = Self.zero(of: keyType)
                var value: JSONValue = Self.zero(of: valueType)
                while !entry.isAtEnd {
                    let (entryField, entryWireType) = try entry.tag()
                    switch entryField {
                    case 1: key = try decodeValue(keyType, wireType: entryWireType, from: &entry, field: field, in: message, depth: depth)
                    case 2: value = try decodeValue(valueType, wireType: entryWireType, from: &entry, field: field, in: message, depth: depth)
                    default: try entry.skip(entryWireType)
                    }
                }
                var map = values[index]?.objectValue ?? JSONObject()
                map[Self.mapKey(key)] = value
                values[index] = .object(map)
            default:
                if field.repeated {
                    var items = values[index]?.arrayValue ?? []
                    if wireType == .lengthDelimited, Self.isPackable(field.type) {
                        var packed = reader.nested(try reader.lengthDelimited())
                        let itemWireType: ProtoWireType = field.type == .double ? .fixed64 : field.type == .float ? .fixed32 : .varint
                        while !packed.isAtEnd { items.append(try decodeValue(field.type, wireType: itemWireType, from: &packed, field: field, in: message, depth: depth)) }
                    } else {
                        items.append(try decodeValue(field.type, wireType: wireType, from: &reader, field: field, in: message, depth: depth))
                    }
                    values[index] = .array(items)
                } else {
                    values[index] = try decodeValue(field.type, wireType: wireType, from: &reader, field: field, in: message, depth: depth)
                }
            }
        }
        var object = JSONObject()
        for (index, field) in message.fields.enumerated() {
            guard let value = values[index] else { continue }
            if field.inline, case .object(let members) = value {
                for (key, member) in members { object[key] = member }
                continue
            }
            if field.omitEmpty, Self.isEmpty(value) { continue }
            object[field.name] = value
        }
        return .object(object)
    }

    private func decodeValue(_ type: KubeProtoSchema.FieldType, wireType: ProtoWireType, from reader: inout ProtoReader,
                             field: KubeProtoSchema.Field, in message: KubeProtoSchema.Message, depth: Int) throws(ProtobufDecodingError) -> JSONValue {
        switch (type, wireType) {
        case (.string, .lengthDelimited):
            return .string(String(decoding: reader.slice(try reader.lengthDelimited()), as: UTF8.self))
        case (.bytes, .lengthDelimited):
            return .string(GoFormats.base64(reader.slice(try reader.lengthDelimited())))
        case (.bool, .varint):
            return .bool(try reader.varint() != 0)
        case (.int32, .varint):
            return .number(String(Int32(truncatingIfNeeded: try reader.varint())))
        case (.int64, .varint):
            return .number(String(Int64(bitPattern: try reader.varint())))
        case (.uint32, .varint):
            return .number(String(UInt32(truncatingIfNeeded: try reader.varint())))
        case (.uint64, .varint):
            return .number(String(try reader.varint()))
        case (.double, .fixed64):
            return .number(Self.number(Double(bitPattern: try reader.fixed64())))
        case (.float, .fixed32):
            return .number(Self.number(Double(Float(bitPattern: try reader.fixed32()))))
        case (.message(let name), .lengthDelimited):
            guard let nested = schema.messages[name] else { throw ProtobufDecodingError("unknown message type \(name)") }
            return try decode(reader.nested(try reader.lengthDelimited()), as: nested, depth: depth + 1)
        default:
            throw mismatch(field, in: message)
        }
    }

    private func mismatch(_ field: KubeProtoSchema.Field, in message: KubeProtoSchema.Message) -> ProtobufDecodingError {
        ProtobufDecodingError("field \(field.name) (\(field.number)) of \(message.name) has the wrong wire type")
    }

    /// The JSON forms of the messages Go encodes as strings, numbers or embedded JSON; `nil`
    /// for an ordinary message.
    private func decodeSpecial(_ reader: ProtoReader, as message: KubeProtoSchema.Message, depth: Int) throws(ProtobufDecodingError) -> JSONValue? {
        switch message.name {
        case Self.time, Self.microTime:
            guard !reader.isAtEnd else { return .null }
            let fields = try scalarFields(reader)
            let seconds = Int64(bitPattern: fields[1] ?? 0)
            let nanos = Int32(truncatingIfNeeded: fields[2] ?? 0)
            return .string(GoFormats.rfc3339(seconds: seconds, nanos: message.name == Self.microTime ? nanos : 0,
                                             fractionDigits: message.name == Self.microTime ? 6 : 0))
        case Self.duration:
            return .string(GoFormats.duration(nanoseconds: Int64(bitPattern: try scalarFields(reader)[1] ?? 0)))
        case Self.quantity:
            return .string(try stringFields(reader)[1] ?? "0")
        case Self.intOrString:
            var copy = reader
            var type: UInt64 = 0
            var intValue: Int32 = 0
            var stringValue = ""
            while !copy.isAtEnd {
                let (number, wireType) = try copy.tag()
                switch (number, wireType) {
                case (1, .varint): type = try copy.varint()
                case (2, .varint): intValue = Int32(truncatingIfNeeded: try copy.varint())
                case (3, .lengthDelimited): stringValue = String(decoding: copy.slice(try copy.lengthDelimited()), as: UTF8.self)
                default: try copy.skip(wireType)
                }
            }
            return type == 1 ? .string(stringValue) : .number(String(intValue))
        case Self.rawExtension, Self.fieldsV1, Self.apiExtensionsJSON:
            let raw = try bytesField(reader, number: 1)
            guard !raw.isEmpty else { return .null }
            if raw.starts(with: Self.magic) { return try decodeObject(raw) }
            do {
                return try JSONValue(parsing: raw)
            } catch {
                throw ProtobufDecodingError("the embedded object of a \(message.name) is neither JSON nor protobuf: \(error)")
            }
        default:
            guard message.isList, let items = message.fields.first else { return nil }
            var values: [JSONValue] = []
            var copy = reader
            while !copy.isAtEnd {
                let (number, wireType) = try copy.tag()
                guard number == items.number else {
                    try copy.skip(wireType)
                    continue
                }
                values.append(try decodeValue(items.type, wireType: wireType, from: &copy, field: items, in: message, depth: depth))
            }
            return .array(values)
        }
    }

    private func scalarFields(_ reader: ProtoReader) throws(ProtobufDecodingError) -> [Int: UInt64] {
        var copy = reader
        var fields: [Int: UInt64] = [:]
        while !copy.isAtEnd {
            let (number, wireType) = try copy.tag()
            if wireType == .varint { fields[number] = try copy.varint() } else { try copy.skip(wireType) }
        }
        return fields
    }

    private func stringFields(_ reader: ProtoReader) throws(ProtobufDecodingError) -> [Int: String] {
        var copy = reader
        var fields: [Int: String] = [:]
        while !copy.isAtEnd {
            let (number, wireType) = try copy.tag()
            if wireType == .lengthDelimited { fields[number] = String(decoding: copy.slice(try copy.lengthDelimited()), as: UTF8.self) } else { try copy.skip(wireType) }
        }
        return fields
    }

    private func bytesField(_ reader: ProtoReader, number wanted: Int) throws(ProtobufDecodingError) -> [UInt8] {
        var copy = reader
        var bytes: [UInt8] = []
        while !copy.isAtEnd {
            let (number, wireType) = try copy.tag()
            if number == wanted, wireType == .lengthDelimited { bytes = Array(copy.slice(try copy.lengthDelimited())) } else { try copy.skip(wireType) }
        }
        return bytes
    }

    static func isPackable(_ type: KubeProtoSchema.FieldType) -> Bool {
        switch type {
        case .bool, .int32, .int64, .uint32, .uint64, .double, .float: true
        default: false
        }
    }

    private static func zero(of type: KubeProtoSchema.FieldType) -> JSONValue {
        switch type {
        case .string, .bytes: .string("")
        case .bool: .bool(false)
        case .int32, .int64, .uint32, .uint64, .double, .float: .number("0")
        case .message, .map: .object(JSONObject())
        }
    }

    private static func mapKey(_ key: JSONValue) -> String {
        switch key {
        case .string(let text): text
        case .number(let text): text
        case .bool(let value): value ? "true" : "false"
        default: ""
        }
    }

    /// What is left out of a field marked `+optional` when decoding: empty strings and lists
    /// (Go writes every non-pointer field into protobuf, and `omitempty` drops these from JSON).
    /// `false`, `0` and `{}` stay: the schema does not say which fields are pointers, whose
    /// `false`, `0` or empty object was set on purpose (`automountServiceAccountToken: false`,
    /// `emptyDir: {}`); so does a zero time's `null`, which Go writes for a struct field.
    static func isEmpty(_ value: JSONValue) -> Bool {
        switch value {
        case .string(let text): text.isEmpty
        case .array(let items): items.isEmpty
        case .null, .bool, .number, .object: false
        }
    }

    /// A double as Go's `encoding/json` writes it (integers without a fraction).
    static func number(_ value: Double) -> String {
        guard value.isFinite else { return "0" }
        if value == value.rounded(), abs(value) < 9e18 { return String(Int64(value)) }
        return "\(value)"
    }
}
