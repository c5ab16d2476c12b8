import Foundation
import KubeModel
import NIOCore

/// The JSON MetaServer writes: objects with this node's revision as `resourceVersion`, lists,
/// watch events and `Status` errors.
enum MetaServerJSON {
    /// An object ready to serve: its JSON with `metadata.resourceVersion` set to the store
    /// revision (so lists, gets and watches of this server agree, as a client's informer needs),
    /// `kind` and `apiVersion` filled in when missing, and the labels for selectors.
    struct Served {
        var json: Data
        var labels: [String: String]
    }

    static func serve(_ object: MetaObject, as resource: APIResource) -> Served? {
        guard var root = (try? JSONSerialization.jsonObject(with: Data(object.json.utf8))) as? [String: Any] else { return nil }
        var metadata = root["metadata"] as? [String: Any] ?? [:]
        metadata["resourceVersion"] = String(object.revision)
        if metadata["name"] == nil { metadata["name"] = object.key.name }
        if resource.namespaced, metadata["namespace"] == nil { metadata["namespace"] = object.key.namespace }
        root["metadata"] = metadata
        if root["kind"] == nil { root["kind"] = resource.kind }
        if root["apiVersion"] == nil { root["apiVersion"] = resource.groupVersion }
        guard let json = try? JSONSerialization.data(withJSONObject: root, options: [.sortedKeys]) else { return nil }
        return Served(json: json, labels: metadata["labels"] as? [String: String] ?? [:])
    }

    static func list(_ items: [Data], of resource: APIResource, revision: Int64) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.writeString(#"{"kind":"\#(resource.kind)List","apiVersion":"\#(resource.groupVersion)","metadata":{"resourceVersion":"\#(revision)"},"items":["#)
        for (index, item) in items.enumerated() {
            if index > 0 { buffer.writeString(",") }
            buffer.writeBytes(item)
        }
        buffer.writeString("]}")
        return buffer
    }

    /// One line of a watch stream.
    static func event(_ type: String, object: Data) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.writeString(#"{"type":"\#(type)","object":"#)
        buffer.writeBytes(object)
        buffer.writeString("}\n")
        return buffer
    }

    static func bookmark(of resource: APIResource, revision: Int64) -> ByteBuffer {
        event("BOOKMARK", object: Data(#"{"kind":"\#(resource.kind)","apiVersion":"\#(resource.groupVersion)","metadata":{"resourceVersion":"\#(revision)"}}"#.utf8))
    }

    /// A `Status` object for an error.
    static func status(code: Int, reason: String, message: String) -> Data {
        let status: [String: Any] = [
            "kind": "Status", "apiVersion": "v1", "metadata": [String: Any](), "status": "Failure", "message": message, "reason": reason,
            "code": code,
        ]
        return (try? JSONSerialization.data(withJSONObject: status, options: [.sortedKeys])) ?? Data()
    }
}
