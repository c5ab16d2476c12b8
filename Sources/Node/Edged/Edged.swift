import Foundation
import KubeModel
import Logging
import ServiceLifecycle
import NIOCore
import Synchronization
import Transport

/// KubeEdge's Edged, the edge's kubelet: it runs the pods bound to this node that MetaManager
/// holds, on a ``ContainerRuntime``, and reports their status to the cloud.
///
/// - The pods come from the ``MetaStore``, never from the cloud directly, so pods start and keep
///   running while the cloud is away. MetaManager tells Edged when a pod, ConfigMap or Secret
///   changed; Edged also looks again every ``Configuration/syncInterval`` (container ends,
///   back-offs, probes).
/// - Each pod has a ``PodWorker``. On start, the runtime's containers are adopted (a container
///   still running is never started twice), and containers of pods no longer stored (deleted
///   while edgecore was down) are stopped and removed.
/// - A pod gone from the store is stopped (SIGTERM, then SIGKILL after its grace period) and its
///   containers and volumes removed. A pod the cloud is deleting (it carries a
///   `deletionTimestamp`) is stopped within its `deletionGracePeriodSeconds`, and then Edged
///   sends the kubelet's final delete (grace 0, uid precondition) for the cloud to remove it.
/// - Service-account tokens of projected volumes are asked of the cloud through the channel
///   and renewed at 80 % of their life; offline, a token is used until it expires.
/// - A pod's status is sent when it changed, as an `update` of `{namespace}/podstatus/{name}` to
///   MetaManager, which stores it and passes it to the cloud on the state lane, where EdgeHub
///   keeps only the newest status of each pod queued (coalesced per pod, reliable).
public final class Edged: Service, Sendable {
    /// Every setting, with a documented default.
    public struct Configuration: Sendable {
        /// The node whose pods run here (`spec.nodeName`).
        public var nodeName: String
        /// Pod directories (volumes) go to `{rootDirectory}/pods`, the process runtime's state to
        /// `{rootDirectory}/containers`.
        public var rootDirectory: String
        /// How often every pod is looked at without a change. Default 1 s (kubelet's PLEG relists each second).
        public var syncInterval: Duration
        /// Crash-loop back-off. Default 10 s doubling to 5 min.
        public var backoff: RestartBackoff
        /// A container log larger than this is rotated. Default 10 MiB (kubelet's containerLogMaxSize).
        public var maxLogBytes: Int
        /// Rotated logs kept per container. Default 5.
        public var maxLogFiles: Int
        /// How often logs are looked at for rotation. Default 10 s (kubelet's containerLogMonitorInterval).
        public var logMonitorInterval: Duration = .seconds(10)
        /// Pods synced at once. Default 16.
        public var concurrentSyncs: Int
        /// The node's address, reported as pods' `hostIP`. Default: ``HostAddress/primaryIPv4()``.
        public var nodeIP: String
        /// How often the node's status (Ready with a heartbeat, addresses, capacity) goes to the
        /// cloud. Default 10 s (KubeEdge's nodeStatusUpdateFrequency).
        public var nodeStatusUpdateFrequency: Duration
        /// Labels the Node gets when it registers (`keadm join --labels`), as kubelet's
        /// `--node-labels`. Default none.
        public var nodeLabels: [String: String]
        /// How long a request for a service-account token may wait for the cloud. Default 10 s.
        public var tokenRequestTimeout: Duration
        /// A stopped pod's final delete is sent again after this while the cloud has not removed
        /// the pod. Default 30 s.
        public var finalDeleteResendInterval: Duration
        /// The clock of the sync passes, back-offs, probes and status reports (tests advance
        /// their own).
        public var clock: any ServiceClock

        public init(nodeName: String, rootDirectory: String = "/var/lib/edged", syncInterval: Duration = .seconds(1), backoff: RestartBackoff = RestartBackoff(),
                    maxLogBytes: Int = 10 << 20, maxLogFiles: Int = 5, concurrentSyncs: Int = 16, nodeIP: String? = nil,
                    nodeStatusUpdateFrequency: Duration = .seconds(10), tokenRequestTimeout: Duration = .seconds(10),
                    finalDeleteResendInterval: Duration = .seconds(30), nodeLabels: [String: String] = [:], clock: any ServiceClock = .system) {
            self.nodeName = nodeName
            self.nodeLabels = nodeLabels
            self.tokenRequestTimeout = tokenRequestTimeout
            self.finalDeleteResendInterval = finalDeleteResendInterval
            self.clock = clock
            self.nodeStatusUpdateFrequency = nodeStatusUpdateFrequency
            self.nodeIP = nodeIP ?? HostAddress.primaryIPv4()
            self.rootDirectory = rootDirectory
            self.syncInterval = syncInterval
            self.backoff = backoff
            self.maxLogBytes = maxLogBytes
            self.maxLogFiles = maxLogFiles
            self.concurrentSyncs = max(1, concurrentSyncs)
        }
    }

    /// The bus module name and group (KubeEdge's).
    public static let moduleName = "edged"
    public static let moduleGroup = "edged"

    public let configuration: Configuration
    public let runtime: any ContainerRuntime
    let store: MetaStore
    private let bus: MessageBus
    let endpoint: BusEndpoint
    let logger: Logger
    let counters = Mutex(EdgedCounters())
    let wake = WakeSignal()
    /// The service-account tokens of the pods' projected volumes.
    let tokens: ServiceAccountTokenManager
    /// Wakes the token loop when a volume wants a token nobody asked for before.
    let tokenWake = WakeSignal()
    /// Kubelet's events about the pods, sent to the cloud after each sync pass.
    let events: PodEventRecorder
    /// When each stopped pod's final delete was last sent, by pod ID.
    let finalDeletes = Mutex<[String: Duration]>([:])
    /// Pods being stopped and removed, by pod ID.
    private let terminating = Mutex<Set<String>>([])
    private let prober: ContainerProber

    /// Creates the module and registers it on `bus`.
    /// - Parameter runtime: what runs containers; by default a ``ProcessRuntime`` under the root directory.
    public init(configuration: Configuration, store: MetaStore, bus: MessageBus, runtime: (any ContainerRuntime)? = nil,
                prober: ContainerProber = ContainerProber(), logger: Logger = Logger(label: "edged")) throws {
        self.configuration = configuration
        self.store = store
        self.bus = bus
        self.logger = logger
        self.prober = prober
        self.runtime = try runtime ?? ProcessRuntime(root: configuration.rootDirectory + "/containers")
        events = PodEventRecorder(node: configuration.nodeName)
        tokens = ServiceAccountTokenManager { [tokenWake] in tokenWake.signal() }
        try FileManager.default.createDirectory(atPath: configuration.rootDirectory + "/pods", withIntermediateDirectories: true)
        endpoint = bus.register(module: Self.moduleName, group: Self.moduleGroup)
    }

    /// Runs pods (and reports the node's status) until graceful shutdown (or cancellation)
    /// takes the module off the bus; returns once the pods being removed are gone. Containers
    /// keep running (as kubelet's do), to be adopted by the next run.
    public func run() async {
        await ModuleRun.run(module: Self.moduleName, bus: bus, loops: [{ [self] in await syncLoop() }, { [self] in await reportNodeStatus() }, { [self] in await tokenLoop() }],
                            leaving: { [wake, tokenWake] in
                                wake.finish()
                                tokenWake.finish()
                            }) { [self] lane in
            // A stored change of a pod, ConfigMap, Secret, …: look again now.
            for await message in endpoint.messages(on: lane) where message.header.parentID == nil { wake.signal() }
        }
    }

    /// What the module counted.
    public var statistics: EdgedCounters { counters.withLock { $0 } }

    // MARK: the sync loop

    /// Looks after the pods until the wake signal finishes; pods being removed are removed in
    /// child tasks, which it waits for.
    private func syncLoop() async {
        await withDiscardingTaskGroup { removals in await syncLoop(removals: &removals) }
    }

    private func syncLoop(removals: inout DiscardingTaskGroup) async {
        var workers: [String: Worker] = [:]
        let resources = MetaStoreResources(store: store)
        var lastRotation = configuration.clock.monotonic
        repeat {
            let pods: [Kube.Pod]
            do {
                pods = try await store.list(type: "pod").objects.compactMap { object in
                    guard let json = try? JSONValue(parsing: object.json) else { return nil }
                    let pod = Kube.Pod(json: json)
                    return pod.nodeName == configuration.nodeName ? pod : nil
                }
            } catch {
                logger.error("cannot read pods from the store", metadata: ["error": "\(error)"])
                pods = workers.values.map(\.pod)
            }
            let wanted = Dictionary(pods.map { (PodWorker.podID($0), $0) }, uniquingKeysWith: { first, _ in first })

            // Pods gone from the store (or being deleted): stop them in the background.
            for (id, worker) in workers where wanted[id] == nil || wanted[id]?.json[path: ["metadata", "deletionTimestamp"]] != nil {
                workers[id] = nil
                let grace = Self.gracePeriod(of: wanted[id] ?? worker.pod)
                removing(id, in: &removals) { [logger, tokens, events] in
                    await worker.worker.terminate(gracePeriod: grace)
                    await worker.worker.remove()
                    if let uid = worker.pod.uid {
                        tokens.forget(podUID: uid)
                        events.forget(podUID: uid)
                    }
                    logger.info("pod removed", metadata: ["pod": "\(worker.pod.key)"])
                }
            }
            // Containers of pods this edgecore does not know (deleted while it was down), or
            // of pods being deleted that no worker looks after (edgecore restarted meanwhile).
            let stopping = terminating.withLock { $0 }
            let running = await runtime.pods()
            for orphan in running where (wanted[orphan] == nil || Self.isDeleting(wanted[orphan])) && workers[orphan] == nil && !stopping.contains(orphan) {
                // The pod's own grace period, or kubelet's default when it went with the pod.
                let grace = wanted[orphan].map(Self.gracePeriod(of:)) ?? .seconds(30)
                removing(orphan, in: &removals) { [runtime, configuration, logger] in
                    for id in await runtime.containers(ofPod: orphan) {
                        await runtime.stop(id, gracePeriod: grace)
                        await runtime.remove(id)
                    }
                    await runtime.removePod(orphan)
                    try? FileManager.default.removeItem(atPath: configuration.rootDirectory + "/pods/" + orphan)
                    logger.info("removed the containers of a pod that is no longer assigned here", metadata: ["pod": "\(orphan)"])
                }
            }
            // Pods being deleted whose containers are all gone: the kubelet's final delete, after
            // the events about them (the cloud takes events only about pods that still exist).
            await sendEvents()
            let runningNow = Set(running)
            for (id, pod) in wanted where Self.isDeleting(pod) && workers[id] == nil && !stopping.contains(id) && !runningNow.contains(id)
                && !terminating.withLock({ $0.contains(id) }) {
                await sendFinalDelete(pod)
            }
            finalDeletes.withLock { sent in sent = sent.filter { wanted[$0.key] != nil } }
            // New and changed pods.
            for (id, pod) in wanted where !Self.isDeleting(pod) && !stopping.contains(id) {
                if let existing = workers[id] {
                    if existing.pod.json[path: ["metadata", "resourceVersion"]] != pod.json[path: ["metadata", "resourceVersion"]] || existing.pod.json["spec"] != pod.json["spec"] {
                        await existing.worker.update(pod)
                        workers[id]?.pod = pod
                    }
                } else {
                    workers[id] = Worker(pod: pod, worker: PodWorker(pod: pod, runtime: runtime, backoff: configuration.backoff, resources: resources,
                                                                     podsRoot: configuration.rootDirectory + "/pods", prober: prober,
                                                                     hostIP: configuration.nodeIP, tokens: tokens, events: events))
                    counters.withLock { $0.podsAdded += 1 }
                }
            }

            let statuses = await syncAll(workers.values.map(\.worker))
            for (pod, status) in statuses {
                let id = PodWorker.podID(pod)
                guard workers[id] != nil, workers[id]?.reported != status else { continue }
                if await report(pod, status: status) { workers[id]?.reported = status }
            }
            await sendEvents()
            counters.withLock {
                $0.syncs += 1
                $0.pods = workers.count
            }
            if configuration.clock.monotonic - lastRotation >= configuration.logMonitorInterval {
                await runtime.rotateLogs(maxBytes: configuration.maxLogBytes, keep: configuration.maxLogFiles)
                lastRotation = configuration.clock.monotonic
            }
            // Until something changes, or the interval passes.
        } while await wake.wait(for: configuration.syncInterval, on: configuration.clock)
    }

    /// Runs `body` (stopping a pod) in a child task of the sync loop, with the pod marked as
    /// terminating until it is done.
    private func removing(_ id: String, in removals: inout DiscardingTaskGroup, _ body: @escaping @Sendable () async -> Void) {
        terminating.withLock { _ = $0.insert(id) }
        counters.withLock { $0.podsRemoved += 1 }
        removals.addTask { [self] in
            await body()
            terminating.withLock { _ = $0.remove(id) }
        }
    }

    /// Probes and syncs every worker, `concurrentSyncs` at a time; each pod's status.
    private func syncAll(_ workers: [PodWorker]) async -> [(Kube.Pod, JSONValue)] {
        await withTaskGroup(of: (Kube.Pod, JSONValue).self) { group in
            var results: [(Kube.Pod, JSONValue)] = []
            var pending = workers.makeIterator()
            func add(_ worker: PodWorker) {
                group.addTask { [clock = configuration.clock] in
                    await worker.probe(now: clock.wallTime)
                    let status = await worker.sync(now: clock.wallTime)
                    return (await worker.pod, status)
                }
            }
            for _ in 0..<configuration.concurrentSyncs { if let worker = pending.next() { add(worker) } }
            while let result = await group.next() {
                results.append(result)
                if let worker = pending.next() { add(worker) }
            }
            return results
        }
    }

    /// Sends the pod's status to MetaManager; whether it was taken.
    private func report(_ pod: Kube.Pod, status: JSONValue) async -> Bool {
        var metadata = JSONObject([("name", .string(pod.name)), ("namespace", .string(pod.namespace.isEmpty ? "default" : pod.namespace))])
        if let uid = pod.uid { metadata["uid"] = .string(uid) }
        if let version = pod.json[path: ["metadata", "resourceVersion"]] { metadata["resourceVersion"] = version }
        let object = JSONValue.object(JSONObject([
            ("apiVersion", .string("v1")), ("kind", .string("Pod")), ("metadata", .object(metadata)), ("status", status),
        ]))
        let message = Message(router: MessageRouter(
            source: Self.moduleName, destination: MetaManager.moduleName, group: MessageRouter.Group.meta, operation: MessageRouter.Operation.update,
            resource: "\(pod.namespace.isEmpty ? "default" : pod.namespace)/podstatus/\(pod.name)"), content: ByteBuffer(string: object.serialized))
        do {
            try await endpoint.send(message, toGroup: MetaManager.moduleGroup, on: .state)
            counters.withLock { $0.statusReports += 1 }
            return true
        } catch {
            counters.withLock { $0.statusFailures += 1 }
            logger.warning("could not report a pod's status", metadata: ["pod": "\(pod.key)", "error": "\(error)"])
            return false
        }
    }

    /// Sends the node's status to MetaManager (which stores it and tells the cloud) now and
    /// then every ``Configuration/nodeStatusUpdateFrequency``.
    private func reportNodeStatus() async {
        let runtimeVersion = await runtime.versionDescription()
        var reporter = NodeStatus(nodeName: configuration.nodeName, nodeIP: configuration.nodeIP, readySince: configuration.clock.wallTime,
                                  containerRuntimeVersion: runtimeVersion, labels: configuration.nodeLabels, storagePath: configuration.rootDirectory)
        repeat {
            reporter.images = await runtime.images()
            let message = Message(router: MessageRouter(
                source: Self.moduleName, destination: MetaManager.moduleName, group: MessageRouter.Group.meta, operation: MessageRouter.Operation.update,
                resource: "default/nodestatus/\(configuration.nodeName)"), content: ByteBuffer(string: reporter.object(now: configuration.clock.wallTime).serialized))
            do {
                try await endpoint.send(message, toGroup: MetaManager.moduleGroup, on: .state)
                counters.withLock { $0.nodeStatusReports += 1 }
            } catch {
                counters.withLock { $0.statusFailures += 1 }
                logger.warning("could not report the node's status", metadata: ["error": "\(error)"])
            }
        } while (try? await configuration.clock.sleep(for: configuration.nodeStatusUpdateFrequency)) != nil
    }

    /// Whether the cloud is deleting the pod (it carries a `deletionTimestamp`).
    static func isDeleting(_ pod: Kube.Pod?) -> Bool {
        pod?.json[path: ["metadata", "deletionTimestamp"]] != nil
    }

    private static func gracePeriod(of pod: Kube.Pod) -> Duration {
        let seconds = pod.json[path: ["metadata", "deletionGracePeriodSeconds"]]?.int64Value ?? pod.terminationGracePeriodSeconds
        return .seconds(max(0, seconds))
    }

    private struct Worker {
        var pod: Kube.Pod
        let worker: PodWorker
        var reported: JSONValue?
    }
}

/// ConfigMaps and Secrets as MetaManager stored them.
struct MetaStoreResources: PodResourceSource {
    let store: MetaStore

    func configMap(namespace: String, name: String) async -> Kube.ConfigMap? {
        await object(namespace: namespace, type: "configmap", name: name).map(Kube.ConfigMap.init(json:))
    }

    func secret(namespace: String, name: String) async -> Kube.Secret? {
        await object(namespace: namespace, type: "secret", name: name).map(Kube.Secret.init(json:))
    }

    private func object(namespace: String, type: String, name: String) async -> JSONValue? {
        guard let stored = try? await store.get(ResourceKey(namespace: namespace, type: type, name: name)) else { return nil }
        return try? JSONValue(parsing: stored.json)
    }
}

/// What Edged counted since it started.
public struct EdgedCounters: Sendable, Equatable {
    /// Pods looked after now.
    public var pods = 0
    public var podsAdded = 0
    public var podsRemoved = 0
    /// Passes over every pod.
    public var syncs = 0
    /// Pod statuses sent to MetaManager (only changes are sent).
    public var statusReports = 0
    /// Node statuses sent to MetaManager.
    public var nodeStatusReports = 0
    /// Pod or node statuses MetaManager did not take.
    public var statusFailures = 0
    /// Service-account tokens the cloud issued, and requests for one that failed.
    public var tokensReceived = 0
    public var tokenFailures = 0
    /// Final deletes sent for pods stopped after the cloud deleted them.
    public var finalDeletes = 0
    /// Events sent to the cloud (each new event, and each change of an event's count).
    public var eventsSent = 0
}
