import Foundation

/// The few fields of a Kubernetes object's `metadata` MetaManager needs, read without decoding
/// the rest of the object.
public struct ObjectMetadata: Sendable, Equatable {
    public var name: String?
    public var namespace: String?
    public var uid: String?
    /// `metadata.resourceVersion` when it is a decimal number (etcd's are); `nil` otherwise.
    public var resourceVersion: Int64?
    public var labels: [String: String]

    /// Reads the metadata of the JSON object in `json`; throws ``MetaError/malformedObject(_:)``
    /// when it is not a JSON object.
    public init(json: some Collection<UInt8>) throws(MetaError) {
        let envelope: Envelope
        do {
            envelope = try JSONDecoder().decode(Envelope.self, from: Data(json))
        } catch {
            throw MetaError.malformedObject("not a Kubernetes object: \(Self.describe(error))")
        }
        name = envelope.metadata?.name
        namespace = envelope.metadata?.namespace
        uid = envelope.metadata?.uid
        resourceVersion = envelope.metadata?.resourceVersion.flatMap { Int64($0) }
        labels = envelope.metadata?.labels ?? [:]
    }

    private struct Envelope: Decodable {
        var metadata: Metadata?
    }

    private struct Metadata: Decodable {
        var name: String?
        var namespace: String?
        var uid: String?
        var resourceVersion: String?
        var labels: [String: String]?
    }

    private static func describe(_ error: any Error) -> String {
        switch error {
        case DecodingError.dataCorrupted(let context): context.debugDescription
        case DecodingError.typeMismatch(_, let context): "\(context.codingPath.map(\.stringValue).joined(separator: ".")): \(context.debugDescription)"
        default: "\(error)"
        }
    }
}

/// Why MetaManager refused a message or a query.
public enum MetaError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The content is not a JSON object of the expected shape.
    case malformedObject(String)
    /// The resource string is not `{namespace}/{type}/{name}` or `{namespace}/{type}`.
    case malformedResource(String)
    /// No such object is stored.
    case notFound(String)
    /// The operation is not one MetaManager handles.
    case unsupportedOperation(String)
    /// The store failed (a full disk, say); nothing was changed.
    case storage(String)

    public var description: String {
        switch self {
        case .malformedObject(let why): "malformed object: \(why)"
        case .malformedResource(let resource): "malformed resource \"\(resource)\": expected {namespace}/{type}/{name} or {namespace}/{type}"
        case .notFound(let key): "\(key) not found"
        case .unsupportedOperation(let operation): "operation \"\(operation)\" is not handled by metaManager"
        case .storage(let why): "storage failed: \(why)"
        }
    }
}
