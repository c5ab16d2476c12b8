/// How MetaManager answers and whom it tells. Every value has a documented default.
public struct MetaManagerConfiguration: Sendable {
    /// Types whose queries go to the cloud while it is reachable (the answer is cached), and are
    /// answered from the store otherwise. Default `configmap`, `secret`, `node`, `service`,
    /// `endpoints` (what KubeEdge's MetaManager asks the cloud for).
    public var remoteQueryTypes: Set<String>
    /// How long a query waits for the cloud before the store answers. Default 5 s.
    public var remoteQueryTimeout: Duration
    /// Modules on this node. Their writes (pod status, say) are stored and then sent on to the
    /// cloud; writes from anyone else come from the cloud and are stored and passed to the
    /// modules that run them. Default KubeEdge's edge module names.
    public var localModules: Set<String>
    /// Resource type → bus group told after a cloud write of that type is stored (Edged runs
    /// pods and mounts their ConfigMaps and Secrets). Default pod, configmap, secret,
    /// service, endpoints → `edged`. A group with no module is skipped.
    public var notifyGroups: [String: String]
    /// The largest object stored; larger writes are refused with a clear error. Default 4 MiB.
    public var maxObjectBytes: Int
    /// Queries answered at once; more wait. Default 64.
    public var maxConcurrentQueries: Int
    /// Writes stored in one transaction at most (a burst is taken at once). Default 256.
    public var maxBatch: Int

    /// Creates a configuration with the documented defaults.
    public init(
        remoteQueryTypes: Set<String> = ["configmap", "secret", "node", "service", "endpoints"],
        remoteQueryTimeout: Duration = .seconds(5),
        localModules: Set<String> = ["edged", "twin", "eventbus", "servicebus", "metaServer", "edgestream"],
        notifyGroups: [String: String] = ["pod": "edged", "configmap": "edged", "secret": "edged", "service": "edged", "endpoints": "edged"],
        maxObjectBytes: Int = 4 << 20,
        maxConcurrentQueries: Int = 64,
        maxBatch: Int = 256
    ) {
        self.remoteQueryTypes = remoteQueryTypes
        self.remoteQueryTimeout = remoteQueryTimeout
        self.localModules = localModules
        self.notifyGroups = notifyGroups
        self.maxObjectBytes = maxObjectBytes
        self.maxConcurrentQueries = maxConcurrentQueries
        self.maxBatch = max(1, maxBatch)
    }
}
