import Foundation

extension Kube {
    /// core/v1 ConfigMap.
    public struct ConfigMap: KubeObject {
        public static let apiVersion = "v1"
        public static let kind = "ConfigMap"
        public static let plural = "configmaps"
        public static let namespaced = true
        public var json: JSONValue
        public init(json: JSONValue) { self.json = json }

        public var data: [String: String] {
            get { json["data"].stringMap }
            set { json["data"] = JSONValue(stringMap: newValue) }
        }

        /// `binaryData`, decoded from base64 (entries that are not base64 are skipped).
        public var binaryData: [String: [UInt8]] { json["binaryData"].stringMap.compactMapValues { Data(base64Encoded: $0).map(Array.init) } }
    }

    /// core/v1 Secret: `data` decoded from base64, with `stringData` merged over it as the API
    /// server does on write.
    public struct Secret: KubeObject {
        public static let apiVersion = "v1"
        public static let kind = "Secret"
        public static let plural = "secrets"
        public static let namespaced = true
        public var json: JSONValue
        public init(json: JSONValue) { self.json = json }

        public var type: String { json["type"]?.stringValue ?? "Opaque" }

        public var data: [String: [UInt8]] {
            get {
                var decoded = json["data"].stringMap.compactMapValues { Data(base64Encoded: $0).map(Array.init) }
                for (key, value) in json["stringData"].stringMap { decoded[key] = Array(value.utf8) }
                return decoded
            }
            set {
                json["stringData"] = nil
                json["data"] = JSONValue(stringMap: newValue.mapValues { Data($0).base64EncodedString() })
            }
        }
    }

    /// core/v1 Service.
    public struct Service: KubeObject {
        public static let apiVersion = "v1"
        public static let kind = "Service"
        public static let plural = "services"
        public static let namespaced = true
        public var json: JSONValue
        public init(json: JSONValue) { self.json = json }

        /// `ClusterIP` (the default), `NodePort`, `LoadBalancer` or `ExternalName`.
        public var type: String { json[path: ["spec", "type"]]?.stringValue ?? "ClusterIP" }
        public var clusterIP: String? { json[path: ["spec", "clusterIP"]]?.stringValue }
        public var selector: [String: String] { json[path: ["spec", "selector"]].stringMap }
        public var ports: [JSONValue] { json[path: ["spec", "ports"]].elements }
    }

    /// core/v1 Endpoints.
    public struct Endpoints: KubeObject {
        public static let apiVersion = "v1"
        public static let kind = "Endpoints"
        public static let plural = "endpoints"
        public static let namespaced = true
        public var json: JSONValue
        public init(json: JSONValue) { self.json = json }

        public var subsets: [JSONValue] { json["subsets"].elements }

        /// Every ready address's IP across the subsets.
        public var addresses: [String] { subsets.flatMap { $0["addresses"].elements.compactMap { $0["ip"]?.stringValue } } }
    }

    /// core/v1 Event.
    public struct Event: KubeObject {
        public static let apiVersion = "v1"
        public static let kind = "Event"
        public static let plural = "events"
        public static let namespaced = true
        public var json: JSONValue
        public init(json: JSONValue) { self.json = json }

        public var involvedObject: ObjectReference {
            get { ObjectReference(json: json["involvedObject"]) }
            set { json["involvedObject"] = newValue.json }
        }

        public var reason: String {
            get { json["reason"]?.stringValue ?? "" }
            set { json["reason"] = .string(newValue) }
        }

        public var message: String {
            get { json["message"]?.stringValue ?? "" }
            set { json["message"] = .string(newValue) }
        }

        /// `Normal` or `Warning`.
        public var type: String {
            get { json["type"]?.stringValue ?? "Normal" }
            set { json["type"] = .string(newValue) }
        }

        public var count: Int64 { json["count"]?.int64Value ?? 1 }
    }

    /// coordination.k8s.io/v1 Lease (node heartbeats, leader election).
    public struct Lease: KubeObject {
        public static let apiVersion = "coordination.k8s.io/v1"
        public static let kind = "Lease"
        public static let plural = "leases"
        public static let namespaced = true
        public var json: JSONValue
        public init(json: JSONValue) { self.json = json }

        public var holderIdentity: String? {
            get { json[path: ["spec", "holderIdentity"]]?.stringValue }
            set { json.set(newValue.map { .string($0) }, at: ["spec", "holderIdentity"]) }
        }

        public var leaseDurationSeconds: Int64? {
            get { json[path: ["spec", "leaseDurationSeconds"]]?.int64Value }
            set { json.set(newValue.map { .integer($0) }, at: ["spec", "leaseDurationSeconds"]) }
        }

        /// RFC 3339 with microseconds, as Kubernetes writes `MicroTime`.
        public var renewTime: String? {
            get { json[path: ["spec", "renewTime"]]?.stringValue }
            set { json.set(newValue.map { .string($0) }, at: ["spec", "renewTime"]) }
        }
    }
}
