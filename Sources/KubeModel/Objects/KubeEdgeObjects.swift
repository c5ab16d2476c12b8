extension Kube {
    /// devices.kubeedge.io/v1beta1 Device.
    public struct Device: KubeObject {
        public static let apiVersion = "devices.kubeedge.io/v1beta1"
        public static let kind = "Device"
        public static let plural = "devices"
        public static let namespaced = true
        public var json: JSONValue
        public init(json: JSONValue) { self.json = json }

        /// The edge node the device is bound to.
        public var nodeName: String {
            get { json[path: ["spec", "nodeName"]]?.stringValue ?? "" }
            set { json.set(.string(newValue), at: ["spec", "nodeName"]) }
        }

        public var deviceModel: String? { json[path: ["spec", "deviceModelRef", "name"]]?.stringValue }

        /// `spec.properties[].desired.value` by property name: what the cloud wants the device set to.
        public var desired: [String: String] {
            var values: [String: String] = [:]
            for property in json[path: ["spec", "properties"]].elements {
                if let name = property["name"]?.stringValue, let value = property[path: ["desired", "value"]]?.stringValue { values[name] = value }
            }
            return values
        }

        /// `status.twins[].reported.value` by property name: what the device last reported.
        public var reported: [String: String] {
            var values: [String: String] = [:]
            for twin in json[path: ["status", "twins"]].elements {
                if let name = twin["propertyName"]?.stringValue, let value = twin[path: ["reported", "value"]]?.stringValue { values[name] = value }
            }
            return values
        }
    }

    /// devices.kubeedge.io/v1beta1 DeviceModel.
    public struct DeviceModel: KubeObject {
        public static let apiVersion = "devices.kubeedge.io/v1beta1"
        public static let kind = "DeviceModel"
        public static let plural = "devicemodels"
        public static let namespaced = true
        public var json: JSONValue
        public init(json: JSONValue) { self.json = json }

        /// The model's property names.
        public var propertyNames: [String] { json[path: ["spec", "properties"]].elements.compactMap { $0["name"]?.stringValue } }
    }

    /// reliablesyncs.kubeedge.io/v1alpha1 ObjectSync: the newest version of one object an edge
    /// node has confirmed, named `{node}.{object uid}` by KubeEdge.
    public struct ObjectSync: KubeObject {
        public static let apiVersion = "reliablesyncs.kubeedge.io/v1alpha1"
        public static let kind = "ObjectSync"
        public static let plural = "objectsyncs"
        public static let namespaced = true
        public var json: JSONValue
        public init(json: JSONValue) { self.json = json }

        public var objectAPIVersion: String { json[path: ["spec", "objectAPIVersion"]]?.stringValue ?? "" }
        public var objectKind: String { json[path: ["spec", "objectKind"]]?.stringValue ?? "" }
        public var objectName: String { json[path: ["spec", "objectName"]]?.stringValue ?? "" }

        /// The object's resourceVersion the node has.
        public var objectResourceVersion: String? {
            get { json[path: ["status", "objectResourceVersion"]]?.stringValue }
            set { json.set(newValue.map { .string($0) }, at: ["status", "objectResourceVersion"]) }
        }
    }
}
