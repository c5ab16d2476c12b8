extension KubeProtobuf {
    /// The JSON form of a message of type `type` (a full message name).
    public func json(fromMessage bytes: [UInt8], type: String) throws(ProtobufDecodingError) -> JSONValue {
        guard let message = schema.message(named: type) else { throw ProtobufDecodingError("unknown message type \(type)") }
        return try decode(ProtobufReader(bytes), as: message, depth: 0)
    }

    private static let maxDepth = 100

    private func decode(_ reader: ProtobufReader, as message: KubeProtoSchema.Message, depth: Int) throws(ProtobufDecodingError) -> JSONValue {
        guard depth < Self.maxDepth else { throw ProtobufDecodingError("messages nest deeper than \(Self.maxDepth)") }
        if let special = try decodeSpecial(reader, as: message, depth: depth) { return special }
        // Each field's value collects in its slot; a list or map is taken out of its slot while
        // it grows, so that it is never copied (a 10,000-item list would be, quadratically).
        var slots = [Slot](repeating: .empty, count: message.fields.count)
        var reader = reader
        while let (number, value) = try reader.next() {
            guard let index = message.fieldIndex(number: number) else { continue }
            let field = message.fields[index]
            switch field.type {
            case .map(let keyType, let valueType):
                guard case .bytes = value else { throw mismatch(field, in: message) }
                var entry = value.message
                var key: JSONValue = Self.zero(of: keyType)
                var mapped: JSONValue = Self.zero(of: valueType)
                while let (entryField, entryValue) = try entry.next() {
                    switch entryField {
                    case 1: key = try decodeValue(entryValue, as: keyType, field: field, in: message, depth: depth)
                    case 2: mapped = try decodeValue(entryValue, as: valueType, field: field, in: message, depth: depth)
                    default: continue
                    }
                }
                var map = slots[index].takeMap()
                map[Self.mapKey(key)] = mapped
                slots[index] = .map(map)
            default:
                guard field.repeated else {
                    slots[index] = .value(try decodeValue(value, as: field.type, field: field, in: message, depth: depth))
                    continue
                }
                var list = slots[index].takeList()
                if case .bytes(let packed) = value, Self.isPackable(field.type) {
                    list += try unpack(packed, as: field.type, field: field, in: message)
                } else {
                    list.append(try decodeValue(value, as: field.type, field: field, in: message, depth: depth))
                }
                slots[index] = .list(list)
            }
        }
        var object = JSONObject()
        for (index, field) in message.fields.enumerated() {
            let value: JSONValue
            switch slots[index] {
            case .empty: continue
            case .value(let single): value = single
            case .list(let items): value = .array(items)
            case .map(let entries): value = .object(entries)
            }
            if field.inline, case .object(let members) = value {
                for (key, member) in members { object[key] = member }
                continue
            }
            if field.omitEmpty, Self.isEmpty(value) { continue }
            // A message's field names are distinct; only an inline struct's may repeat them.
            if message.inlineFields.isEmpty { object.appendNew(field.name, value) } else { object[field.name] = value }
        }
        return .object(object)
    }

    /// What a message's field has collected while decoding.
    private enum Slot {
        case empty
        case value(JSONValue)
        case list([JSONValue])
        case map(JSONObject)

        /// The list collected so far, left in the slot no more (so that it can grow in place).
        mutating func takeList() -> [JSONValue] {
            guard case .list(let items) = self else { return [] }
            self = .empty
            return items
        }

        mutating func takeMap() -> JSONObject {
            guard case .map(let entries) = self else { return JSONObject() }
            self = .empty
            return entries
        }
    }

    private func decodeValue(_ value: ProtobufReader.Value, as type: KubeProtoSchema.FieldType, field: KubeProtoSchema.Field,
                             in message: KubeProtoSchema.Message, depth: Int) throws(ProtobufDecodingError) -> JSONValue {
        switch (type, value) {
        case (.string, .bytes(let bytes)): return .string(String(decoding: bytes, as: UTF8.self))
        case (.bytes, .bytes(let bytes)): return .string(GoFormats.base64(bytes))
        case (.bool, .varint(let raw)): return .bool(raw != 0)
        case (.int32, .varint(let raw)): return .number(String(Int32(truncatingIfNeeded: raw)))
        case (.int64, .varint(let raw)): return .number(String(Int64(bitPattern: raw)))
        case (.uint32, .varint(let raw)): return .number(String(UInt32(truncatingIfNeeded: raw)))
        case (.uint64, .varint(let raw)): return .number(String(raw))
        case (.double, .fixed(let raw)): return .number(Self.number(Double(bitPattern: raw)))
        case (.float, .fixed(let raw)): return .number(Self.number(Double(Float(bitPattern: UInt32(truncatingIfNeeded: raw)))))
        case (.message(let index), .bytes):
            return try decode(value.message, as: schema.messageList[index], depth: depth + 1)
        default:
            throw mismatch(field, in: message)
        }
    }

    /// A packed repeated field's values (proto3 writes them so; proto2 may).
    private func unpack(_ bytes: ArraySlice<UInt8>, as type: KubeProtoSchema.FieldType, field: KubeProtoSchema.Field,
                        in message: KubeProtoSchema.Message) throws(ProtobufDecodingError) -> [JSONValue] {
        var values: [JSONValue] = []
        var rest = bytes
        while !rest.isEmpty {
            switch type {
            case .double, .float:
                let width = type == .double ? 8 : 4
                guard rest.count >= width else { throw mismatch(field, in: message) }
                var raw: UInt64 = 0
                for (offset, byte) in rest.prefix(width).enumerated() { raw |= UInt64(byte) << (8 * UInt64(offset)) }
                rest = rest.dropFirst(width)
                values.append(try decodeValue(.fixed(raw), as: type, field: field, in: message, depth: 0))
            default:
                var raw: UInt64 = 0
                var shift: UInt64 = 0
                while true {
                    guard let byte = rest.popFirst(), shift < 64 else { throw ProtobufDecodingError("a packed varint of \(field.name) is cut short") }
                    raw |= UInt64(byte & 0x7f) << shift
                    if byte < 0x80 { break }
                    shift += 7
                }
                values.append(try decodeValue(.varint(raw), as: type, field: field, in: message, depth: 0))
            }
        }
        return values
    }

    private func mismatch(_ field: KubeProtoSchema.Field, in message: KubeProtoSchema.Message) -> ProtobufDecodingError {
        ProtobufDecodingError("field \(field.name) (\(field.number)) of \(message.name) has the wrong wire type")
    }

    /// Fields 1 to 3 of a small message (times, quantities, int-or-strings, embedded JSON),
    /// the last of each number winning; the rest are skipped.
    private struct SmallFields {
        private var slots: (ProtobufReader.Value?, ProtobufReader.Value?, ProtobufReader.Value?) = (nil, nil, nil)

        init(_ reader: ProtobufReader) throws(ProtobufDecodingError) {
            var reader = reader
            while let (number, value) = try reader.next() {
                switch number {
                case 1: slots.0 = value
                case 2: slots.1 = value
                case 3: slots.2 = value
                default: continue
                }
            }
        }

        subscript(number: Int) -> ProtobufReader.Value? {
            switch number {
            case 1: slots.0
            case 2: slots.1
            case 3: slots.2
            default: nil
            }
        }
    }

    private func fields(_ reader: ProtobufReader) throws(ProtobufDecodingError) -> SmallFields { try SmallFields(reader) }

    /// The JSON forms of the messages Go encodes as strings, numbers or embedded JSON; `nil`
    /// for an ordinary message.
    private func decodeSpecial(_ reader: ProtobufReader, as message: KubeProtoSchema.Message, depth: Int) throws(ProtobufDecodingError) -> JSONValue? {
        switch message.special {
        case .none:
            return nil
        case .time, .microTime:
            guard !reader.isAtEnd else { return .null }
            let fields = try fields(reader)
            let micro = message.special == .microTime
            return .string(GoFormats.rfc3339(seconds: fields[1]?.int64 ?? 0, nanos: micro ? fields[2]?.int32 ?? 0 : 0, fractionDigits: micro ? 6 : 0))
        case .duration:
            return .string(GoFormats.duration(nanoseconds: try fields(reader)[1]?.int64 ?? 0))
        case .quantity:
            return .string(try fields(reader)[1]?.string ?? "0")
        case .intOrString:
            let fields = try fields(reader)
            return fields[1]?.int64 == 1 ? .string(fields[3]?.string ?? "") : .number(String(fields[2]?.int32 ?? 0))
        case .embeddedJSON:
            let raw = try fields(reader)[1]?.data ?? []
            guard !raw.isEmpty else { return .null }
            if raw.starts(with: Self.magic) { return try decodeObject(raw) }
            do {
                return try JSONValue(parsing: raw)
            } catch {
                throw ProtobufDecodingError("the embedded object of a \(message.name) is neither JSON nor protobuf: \(error)")
            }
        case .schemaOrArray, .schemaOrBool, .schemaOrStringArray:
            // Field 1 (2 for OrBool) is the schema; the other the list or the boolean.
            let schemaField = message.special == .schemaOrBool ? 2 : 1
            var reader = reader
            var schemaValue: JSONValue?
            var others: [JSONValue] = []
            var flag = false
            while let (number, value) = try reader.next() {
                guard let index = message.fieldIndex(number: number) else { continue }
                let field = message.fields[index]
                let decoded = try decodeValue(value, as: field.type, field: field, in: message, depth: depth)
                if number == schemaField { schemaValue = decoded } else if case .bool(let allows) = decoded { flag = allows } else { others.append(decoded) }
            }
            if let schemaValue { return schemaValue }
            return message.special == .schemaOrBool ? .bool(flag) : .array(others)
        case .list:
            guard let items = message.fields.first else { return .array([]) }
            var values: [JSONValue] = []
            var reader = reader
            while let (number, value) = try reader.next() {
                guard number == items.number else { continue }
                values.append(try decodeValue(value, as: items.type, field: items, in: message, depth: depth))
            }
            return .array(values)
        }
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
