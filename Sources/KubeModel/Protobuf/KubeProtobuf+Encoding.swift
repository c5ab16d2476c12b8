extension KubeProtobuf {
    /// The message of type `type` (a full message name) for a JSON value; members the schema
    /// does not know (`apiVersion`, `kind` of a top-level object among them) are left out.
    public func message(fromJSON value: JSONValue, type: String) throws(ProtobufEncodingError) -> [UInt8] {
        guard let message = schema.message(named: type) else { throw ProtobufEncodingError("unknown message type \(type)") }
        var writer = ProtobufWriter()
        try encode(value, as: message, into: &writer, depth: 0)
        return writer.bytes
    }

    private static let maxDepth = 100

    /// Writes `value` as `message`. Errors name the field they are about: each level puts its
    /// field's name in front of the path as the error passes (no path is built otherwise).
    private func encode(_ value: JSONValue, as message: KubeProtoSchema.Message, into writer: inout ProtobufWriter,
                        depth: Int) throws(ProtobufEncodingError) {
        guard depth < Self.maxDepth else { throw ProtobufEncodingError(reason: "objects nest deeper than \(Self.maxDepth)") }
        if try encodeSpecial(value, as: message, into: &writer, depth: depth) { return }
        guard case .object(let object) = value else { throw ProtobufEncodingError(reason: "expected an object") }
        // The members in their own order (protobuf does not mind); what belongs to no field may
        // be an inline embedded struct's, which reads the same object below.
        for (key, member) in object {
            guard let index = message.fieldIndexByName[key], !message.fields[index].inline else { continue }
            let field = message.fields[index]
            guard member != .null || Self.keepsNull(field.type, schema) else { continue }
            do {
                try encodeField(member, field, into: &writer, depth: depth)
            } catch {
                throw error.within(field.name)
            }
        }
        // Embedded structs are always written, as Go writes a non-pointer field.
        for index in message.inlineFields {
            let field = message.fields[index]
            try encodeValue(value, type: field.type, number: field.number, into: &writer, depth: depth)
        }
    }

    /// One member of an object: a map's entries, a list's items, or a value.
    private func encodeField(_ member: JSONValue, _ field: KubeProtoSchema.Field, into writer: inout ProtobufWriter,
                             depth: Int) throws(ProtobufEncodingError) {
        switch field.type {
        case .map(let keyType, let valueType):
            guard case .object(let entries) = member else { throw ProtobufEncodingError(reason: "expected an object") }
            for (key, entryValue) in entries.sorted(by: { $0.key < $1.key }) {
                do {
                    try writer.lengthDelimitedField(field.number) { (entry: inout ProtobufWriter) throws(ProtobufEncodingError) in
                        try encodeValue(Self.keyValue(key, keyType), type: keyType, number: 1, into: &entry, depth: depth)
                        try encodeValue(entryValue, type: valueType, number: 2, into: &entry, depth: depth)
                    }
                } catch {
                    throw error.within("[" + key + "]")
                }
            }
        default:
            guard field.repeated else { return try encodeValue(member, type: field.type, number: field.number, into: &writer, depth: depth) }
            guard case .array(let items) = member else { throw ProtobufEncodingError(reason: "expected a list") }
            try encodeItems(items, type: field.type, number: field.number, into: &writer, depth: depth)
        }
    }

    private func encodeItems(_ items: [JSONValue], type: KubeProtoSchema.FieldType, number: Int, into writer: inout ProtobufWriter,
                             depth: Int) throws(ProtobufEncodingError) {
        for (index, item) in items.enumerated() {
            do {
                try encodeValue(item, type: type, number: number, into: &writer, depth: depth)
            } catch {
                throw error.within("[\(index)]")
            }
        }
    }

    /// `null` times are written (as empty messages) so that they come back as `null`.
    private static func keepsNull(_ type: KubeProtoSchema.FieldType, _ schema: KubeProtoSchema) -> Bool {
        guard case .message(let index) = type else { return false }
        let special = schema.messageList[index].special
        return special == .time || special == .microTime
    }

    private static func keyValue(_ key: String, _ type: KubeProtoSchema.FieldType) -> JSONValue {
        type == .string ? .string(key) : .number(key)
    }

    private func encodeValue(_ value: JSONValue, type: KubeProtoSchema.FieldType, number: Int, into writer: inout ProtobufWriter,
                             depth: Int) throws(ProtobufEncodingError) {
        switch type {
        case .string:
            guard case .string(let text) = value else { throw ProtobufEncodingError(reason: "expected a string") }
            writer.lengthDelimitedField(number, text.utf8)
        case .bytes:
            guard case .string(let text) = value, let bytes = GoFormats.decodeBase64(text) else {
                throw ProtobufEncodingError(reason: "expected base64 bytes")
            }
            writer.lengthDelimitedField(number, bytes)
        case .bool:
            guard case .bool(let flag) = value else { throw ProtobufEncodingError(reason: "expected a boolean") }
            writer.varintField(number, flag ? 1 : 0)
        case .int32, .int64:
            guard case .number(let text) = value, let integer = Self.integer(text), type == .int64 || Int32(exactly: integer) != nil else {
                throw ProtobufEncodingError(reason: "expected \(type == .int32 ? "a 32-bit" : "an") integer")
            }
            writer.varintField(number, UInt64(bitPattern: integer))
        case .uint32, .uint64:
            guard case .number(let text) = value, let integer = UInt64(text) ?? Self.integer(text).flatMap(UInt64.init(exactly:)),
                  type == .uint64 || UInt32(exactly: integer) != nil else { throw ProtobufEncodingError(reason: "expected an unsigned integer") }
            writer.varintField(number, integer)
        case .double, .float:
            guard case .number(let text) = value, let double = Double(text) else { throw ProtobufEncodingError(reason: "expected a number") }
            if type == .double { writer.fixed64Field(number, double.bitPattern) } else { writer.fixed32Field(number, Float(double).bitPattern) }
        case .message(let index):
            let message = schema.messageList[index]
            try writer.lengthDelimitedField(number) { (inner: inout ProtobufWriter) throws(ProtobufEncodingError) in
                try encode(value, as: message, into: &inner, depth: depth + 1)
            }
        case .map:
            throw ProtobufEncodingError(reason: "a map inside a map")
        }
    }

    /// An integer written as `3`, `-3` or `3.0` / `3e2` (exact); `nil` otherwise.
    private static func integer(_ text: String) -> Int64? {
        if let integer = Int64(text) { return integer }
        guard let double = Double(text), double == double.rounded(), abs(double) < 9.3e18 else { return nil }
        return Int64(double)
    }

    /// Writes the messages that are strings, numbers or embedded JSON in JSON; `false` for an
    /// ordinary message.
    private func encodeSpecial(_ value: JSONValue, as message: KubeProtoSchema.Message, into writer: inout ProtobufWriter,
                               depth: Int) throws(ProtobufEncodingError) -> Bool {
        switch message.special {
        case .none:
            return false
        case .time, .microTime:
            if value == .null { return true }
            guard case .string(let text) = value, let time = GoFormats.parseRFC3339(text) else {
                throw ProtobufEncodingError(reason: "expected an RFC 3339 time")
            }
            writer.varintField(1, UInt64(bitPattern: time.seconds))
            if time.nanos != 0 { writer.varintField(2, UInt64(bitPattern: Int64(time.nanos))) }
        case .duration:
            guard case .string(let text) = value, let nanoseconds = GoFormats.parseDuration(text) else {
                throw ProtobufEncodingError(reason: "expected a duration")
            }
            writer.varintField(1, UInt64(bitPattern: nanoseconds))
        case .quantity:
            switch value {
            case .string(let text): writer.lengthDelimitedField(1, text.utf8)
            case .number(let text): writer.lengthDelimitedField(1, text.utf8)
            default: throw ProtobufEncodingError(reason: "expected a quantity")
            }
        case .intOrString:
            switch value {
            case .number(let text):
                guard let integer = Int64(text), let small = Int32(exactly: integer) else { throw ProtobufEncodingError(reason: "expected a 32-bit integer") }
                writer.varintField(1, 0)
                writer.varintField(2, UInt64(bitPattern: Int64(small)))
            case .string(let text):
                writer.varintField(1, 1)
                writer.lengthDelimitedField(3, text.utf8)
            default:
                throw ProtobufEncodingError(reason: "expected an integer or a string")
            }
        case .embeddedJSON:
            if value != .null { writer.lengthDelimitedField(1, value.serializedBytes) }
        case .schemaOrArray, .schemaOrBool, .schemaOrStringArray:
            let schemaField = message.special == .schemaOrBool ? 2 : 1
            guard let schema = message.fieldIndex(number: schemaField).map({ message.fields[$0] }),
                  let other = message.fieldIndex(number: schemaField == 1 ? 2 : 1).map({ message.fields[$0] }) else { return true }
            switch value {
            case .object:
                // Go's decoder of a schema sets `allows` too.
                if message.special == .schemaOrBool { writer.varintField(other.number, 1) }
                try encodeValue(value, type: schema.type, number: schema.number, into: &writer, depth: depth)
            case .bool(let allows) where message.special == .schemaOrBool:
                writer.varintField(other.number, allows ? 1 : 0)
            case .array(let items) where message.special != .schemaOrBool:
                try encodeItems(items, type: other.type, number: other.number, into: &writer, depth: depth)
            default:
                throw ProtobufEncodingError(reason: "expected a schema\(message.special == .schemaOrBool ? " or a boolean" : " or a list")")
            }
        case .list:
            guard let items = message.fields.first else { return true }
            guard case .array(let values) = value else {
                if value == .null { return true }
                throw ProtobufEncodingError(reason: "expected a list")
            }
            try encodeItems(values, type: items.type, number: items.number, into: &writer, depth: depth)
        }
        return true
    }
}
