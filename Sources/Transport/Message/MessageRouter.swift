/// Where a ``Message`` comes from, where it goes and what it does, as in KubeEdge's beehive model.
public struct MessageRouter: Hashable, Sendable {
    /// The sending module (`edgecontroller`, `metaManager`, ...).
    public var source: String
    /// The receiving module, or empty when routing is by ``group``.
    public var destination: String
    /// The module group (`resource`, `twin`, `func`, `user`, `meta`, `bus`, `hub`).
    public var group: String
    /// The operation (`insert`, `update`, `delete`, `query`, `response`, `keepalive`, ...).
    public var operation: String
    /// The resource path, e.g. `default/pod/nginx` or `node/edge-1/...`.
    public var resource: String

    /// Creates a router.
    public init(
        source: String = "", destination: String = "", group: String = "", operation: String = "",
        resource: String = ""
    ) {
        self.source = source
        self.destination = destination
        self.group = group
        self.operation = operation
        self.resource = resource
    }
}

extension MessageRouter {
    /// KubeEdge's well-known operations.
    public enum Operation {
        public static let insert = "insert"
        public static let update = "update"
        public static let patch = "patch"
        public static let delete = "delete"
        public static let query = "query"
        public static let response = "response"
        public static let keepalive = "keepalive"
        public static let publish = "publish"
        public static let upload = "upload"
        public static let upsert = "upsert"
        /// A refusal or failure answering the message named by `parentID` (its content says why).
        public static let error = "error"
    }

    /// KubeEdge's well-known module groups.
    public enum Group {
        public static let resource = "resource"
        public static let twin = "twin"
        public static let function = "func"
        public static let user = "user"
        public static let meta = "meta"
        public static let bus = "bus"
        public static let hub = "hub"
    }
}
