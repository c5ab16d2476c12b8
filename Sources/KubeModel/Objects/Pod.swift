extension Kube {
    /// core/v1 Pod.
    public struct Pod: KubeObject {
        public static let apiVersion = "v1"
        public static let kind = "Pod"
        public static let plural = "pods"
        public static let namespaced = true
        public var json: JSONValue
        public init(json: JSONValue) { self.json = json }

        /// The node the pod is bound to; empty while unscheduled.
        public var nodeName: String {
            get { json[path: ["spec", "nodeName"]]?.stringValue ?? "" }
            set { json.set(.string(newValue), at: ["spec", "nodeName"]) }
        }

        /// `Always` (the default), `OnFailure` or `Never`.
        public var restartPolicy: String { json[path: ["spec", "restartPolicy"]]?.stringValue ?? "Always" }

        /// Seconds between SIGTERM and SIGKILL; 30 when unset.
        public var terminationGracePeriodSeconds: Int64 { json[path: ["spec", "terminationGracePeriodSeconds"]]?.int64Value ?? 30 }

        public var containers: [Container] {
            get { json[path: ["spec", "containers"]].elements.map(Container.init(json:)) }
            set { json.set(.array(newValue.map(\.json)), at: ["spec", "containers"]) }
        }

        public var initContainers: [Container] { json[path: ["spec", "initContainers"]].elements.map(Container.init(json:)) }

        /// `Pending`, `Running`, `Succeeded`, `Failed` or `Unknown`; empty before the server set it.
        public var phase: String {
            get { json[path: ["status", "phase"]]?.stringValue ?? "" }
            set { json.set(.string(newValue), at: ["status", "phase"]) }
        }

        public var conditions: [KubeCondition] {
            get { json[path: ["status", "conditions"]].elements.map(KubeCondition.init(json:)) }
            set { json.set(.array(newValue.map(\.json)), at: ["status", "conditions"]) }
        }

        /// `status.containerStatuses`, as JSON (Edged writes them whole).
        public var containerStatuses: [JSONValue] {
            get { json[path: ["status", "containerStatuses"]].elements }
            set { json.set(.array(newValue), at: ["status", "containerStatuses"]) }
        }
    }

    /// A container of a pod's spec.
    public struct Container: Sendable, Hashable {
        public var json: JSONValue
        public init(json: JSONValue) { self.json = json }

        public var name: String { json["name"]?.stringValue ?? "" }
        public var image: String {
            get { json["image"]?.stringValue ?? "" }
            set { json["image"] = .string(newValue) }
        }

        public var command: [String] { json["command"].elements.compactMap(\.stringValue) }
        public var args: [String] { json["args"].elements.compactMap(\.stringValue) }
        public var workingDir: String? { json["workingDir"]?.stringValue }
    }

    /// core/v1 Node.
    public struct Node: KubeObject {
        public static let apiVersion = "v1"
        public static let kind = "Node"
        public static let plural = "nodes"
        public static let namespaced = false
        public var json: JSONValue
        public init(json: JSONValue) { self.json = json }

        public var conditions: [KubeCondition] {
            get { json[path: ["status", "conditions"]].elements.map(KubeCondition.init(json:)) }
            set { json.set(.array(newValue.map(\.json)), at: ["status", "conditions"]) }
        }

        /// The `Ready` condition's verdict; `nil` when the node has not reported one.
        public var isReady: Bool? {
            conditions.first { $0.type == "Ready" }.map { $0.status == "True" }
        }

        public var unschedulable: Bool { json[path: ["spec", "unschedulable"]]?.boolValue ?? false }
        public var kubeletVersion: String? { json[path: ["status", "nodeInfo", "kubeletVersion"]]?.stringValue }
    }
}
