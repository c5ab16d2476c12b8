extension KubeProtobuf {
    /// One event of a protobuf watch (`application/vnd.kubernetes.protobuf;stream=watch`): a
    /// `metav1.WatchEvent` (no envelope) whose `object.raw` is the enveloped object, after the
    /// message's length in 4 big-endian bytes.
    public func watchEventFrame(type: String, object: JSONValue) throws(ProtobufEncodingError) -> [UInt8] {
        var extensionMessage = ProtobufWriter()
        extensionMessage.lengthDelimitedField(1, try encodeObject(object))
        var event = ProtobufWriter()
        event.lengthDelimitedField(1, type.utf8)
        event.lengthDelimitedField(2, extensionMessage.bytes)
        let length = UInt32(event.bytes.count)
        return [UInt8(length >> 24), UInt8(length >> 16 & 255), UInt8(length >> 8 & 255), UInt8(length & 255)] + event.bytes
    }

    /// The events of a protobuf watch stream's bytes, as `(type, object)`; `rest` keeps a
    /// frame not yet complete.
    public func watchEvents(from bytes: inout [UInt8]) throws(ProtobufDecodingError) -> [(type: String, object: JSONValue)] {
        var events: [(String, JSONValue)] = []
        var offset = 0
        while bytes.count - offset >= 4 {
            let length = Int(bytes[offset]) << 24 | Int(bytes[offset + 1]) << 16 | Int(bytes[offset + 2]) << 8 | Int(bytes[offset + 3])
            guard bytes.count - offset - 4 >= length else { break }
            let message = Array(bytes[(offset + 4)..<(offset + 4 + length)])
            offset += 4 + length
            guard case .object(let event) = try json(fromMessage: message, type: Self.meta + "WatchEvent") else { continue }
            events.append((event["type"]?.stringValue ?? "", event["object"] ?? .null))
        }
        bytes.removeFirst(offset)
        return events
    }
}
