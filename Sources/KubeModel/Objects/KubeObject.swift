import Foundation

/// The typed Kubernetes objects (`Kube.Pod`, `Kube.Node`, `Kube.Device`, …), in a namespace of
/// their own so that names like `Node`, `Service` and `Event` do not collide with modules and
/// other libraries' types.
public enum Kube {}

/// A Kubernetes object of one kind as a typed view over its JSON: the accessors read and write
/// the fields they name, and every other field, known to this code or not, stays as it came
/// (so a read-modify-write through a typed object loses nothing).
public protocol KubeObject: Sendable, Hashable {
    /// `v1`, or `{group}/{version}`.
    static var apiVersion: String { get }
    static var kind: String { get }
    /// The resource's URL name (`pods`).
    static var plural: String { get }
    static var namespaced: Bool { get }
    /// The whole object.
    var json: JSONValue { get set }
    init(json: JSONValue)
}

extension KubeObject {
    /// An empty object of this kind named `name` (in `namespace` when the kind is namespaced).
    public init(name: String, namespace: String? = nil) {
        var metadata = JSONObject([("name", .string(name))])
        if Self.namespaced { metadata["namespace"] = .string(namespace ?? "default") }
        self.init(json: .object(JSONObject([("apiVersion", .string(Self.apiVersion)), ("kind", .string(Self.kind)), ("metadata", .object(metadata))])))
    }

    public var name: String {
        get { json[path: ["metadata", "name"]]?.stringValue ?? "" }
        set { json.set(.string(newValue), at: ["metadata", "name"]) }
    }

    /// Empty for cluster-scoped objects.
    public var namespace: String {
        get { json[path: ["metadata", "namespace"]]?.stringValue ?? "" }
        set { json.set(newValue.isEmpty ? nil : .string(newValue), at: ["metadata", "namespace"]) }
    }

    public var uid: String? { json[path: ["metadata", "uid"]]?.stringValue }

    /// The version optimistic concurrency checks; `nil` on an object not yet stored.
    public var resourceVersion: String? {
        get { json[path: ["metadata", "resourceVersion"]]?.stringValue }
        set { json.set(newValue.map { .string($0) }, at: ["metadata", "resourceVersion"]) }
    }

    public var generation: Int64 { json[path: ["metadata", "generation"]]?.int64Value ?? 0 }
    public var creationTimestamp: String? { json[path: ["metadata", "creationTimestamp"]]?.stringValue }
    /// Set once deletion has begun.
    public var deletionTimestamp: String? { json[path: ["metadata", "deletionTimestamp"]]?.stringValue }

    public var labels: [String: String] {
        get { json[path: ["metadata", "labels"]].stringMap }
        set { json.set(JSONValue(stringMap: newValue), at: ["metadata", "labels"]) }
    }

    public var annotations: [String: String] {
        get { json[path: ["metadata", "annotations"]].stringMap }
        set { json.set(JSONValue(stringMap: newValue), at: ["metadata", "annotations"]) }
    }

    /// `namespace/name`, or `name` for cluster-scoped objects (the cache key client-go uses).
    public var key: String { namespace.isEmpty ? name : "\(namespace)/\(name)" }
}

/// A condition as nodes and pods report them (`type`, `status`, `reason`, `message`, times).
public struct KubeCondition: Sendable, Hashable {
    public var json: JSONValue

    public init(json: JSONValue) { self.json = json }

    public init(type: String, status: Bool, reason: String? = nil, message: String? = nil, time: String? = nil) {
        var object = JSONObject([("type", .string(type)), ("status", .string(status ? "True" : "False"))])
        if let reason { object["reason"] = .string(reason) }
        if let message { object["message"] = .string(message) }
        if let time { object["lastTransitionTime"] = .string(time) }
        json = .object(object)
    }

    public var type: String { json["type"]?.stringValue ?? "" }
    /// `True`, `False` or `Unknown`.
    public var status: String { json["status"]?.stringValue ?? "Unknown" }
    public var reason: String? { json["reason"]?.stringValue }
    public var message: String? { json["message"]?.stringValue }
}

/// Kubernetes' reference to another object (an Event's `involvedObject`, an owner), as the JSON
/// has it. (CloudHub's `EdgeObjectKey` is a different thing: KubeEdge's `{namespace}/{type}/{name}`
/// key of an object delivered to a node.)
public struct ObjectReference: Sendable, Hashable {
    public var apiVersion: String?
    public var kind: String
    public var namespace: String?
    public var name: String
    public var uid: String?

    public init(apiVersion: String? = nil, kind: String, namespace: String? = nil, name: String, uid: String? = nil) {
        self.apiVersion = apiVersion
        self.kind = kind
        self.namespace = namespace
        self.name = name
        self.uid = uid
    }

    init(json: JSONValue?) {
        apiVersion = json?["apiVersion"]?.stringValue
        kind = json?["kind"]?.stringValue ?? ""
        namespace = json?["namespace"]?.stringValue
        name = json?["name"]?.stringValue ?? ""
        uid = json?["uid"]?.stringValue
    }

    var json: JSONValue {
        var object = JSONObject()
        if let apiVersion { object["apiVersion"] = .string(apiVersion) }
        object["kind"] = .string(kind)
        if let namespace { object["namespace"] = .string(namespace) }
        object["name"] = .string(name)
        if let uid { object["uid"] = .string(uid) }
        return .object(object)
    }
}

extension JSONValue {
    /// A map of strings (labels, a ConfigMap's data); `nil` for no members.
    init?(stringMap: [String: String]) {
        guard !stringMap.isEmpty else { return nil }
        self = .object(JSONObject(stringMap.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) }))
    }
}

extension Optional<JSONValue> {
    /// The string members of an object (others are skipped); empty when absent.
    public var stringMap: [String: String] {
        guard case .object(let object)? = self else { return [:] }
        var map: [String: String] = [:]
        for (key, value) in object { if let text = value.stringValue { map[key] = text } }
        return map
    }

    /// The elements of an array; empty when absent.
    public var elements: [JSONValue] { self?.arrayValue ?? [] }
}
