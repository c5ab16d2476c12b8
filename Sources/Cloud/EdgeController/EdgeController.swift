import CloudHub
import Foundation
import KubeModel
import Logging
import ServiceLifecycle
import NIOCore
import Synchronization
import Transport

/// KubeEdge's EdgeController: sends each edge node exactly the Pods bound to it, the
/// ConfigMaps and Secrets those pods use, and the Services selecting them with their
/// Endpoints; keeps the node's Node object (registered on its first connection, `Ready` while
/// it is connected, `Unknown` after a grace period away); and writes pod status reported by
/// the edge to the API server.
///
/// Objects go through a ``NodeObjectSender`` (group `resource`, for the edge's MetaManager):
/// only what changed, with `state(key)` delivery, recorded by the ``SyncController``.
///
/// Edge nodes are the Node objects labelled `node-role.kubernetes.io/edge` and the nodes
/// connected to CloudHub; pods bound to other nodes are not sent anywhere.
public final class EdgeController: Service, Sendable {
    public struct Configuration: Sendable {
        /// How long a node may be disconnected before its `Ready` condition becomes `Unknown`.
        public var nodeNotReadyGracePeriod: Duration
        /// Changes arriving within this time are sent together.
        public var batchInterval: Duration
        /// The clock of the grace periods and of the conditions' timestamps (tests advance
        /// their own).
        public var clock: any ServiceClock

        public init(nodeNotReadyGracePeriod: Duration = .seconds(40), batchInterval: Duration = .milliseconds(20), clock: any ServiceClock = .system) {
            self.nodeNotReadyGracePeriod = nodeNotReadyGracePeriod
            self.batchInterval = batchInterval
            self.clock = clock
        }
    }

    /// What the controller counted.
    public struct Counters: Sendable, Equatable {
        public var objectsSent = 0
        public var deletesSent = 0
        public var podStatusesWritten = 0
        public var podStatusesDropped = 0
        /// Node status reports written to the Node (each also renews the node's Lease).
        public var nodeStatusesWritten = 0
        /// Node status reports refused: malformed, or about another node.
        public var nodeStatusesDropped = 0
        public var nodesRegistered = 0
        /// Final deletes of pods their node stopped, written to the API server.
        public var finalDeletes = 0
        /// Service-account tokens requested for nodes' pods, and requests refused.
        public var tokensIssued = 0
        public var tokenRequestsRefused = 0
        /// Events from the edges written to the API server, and events refused (about an object
        /// that is not the node's, or malformed).
        public var eventsWritten = 0
        public var eventsRefused = 0
        public var failures = 0
    }

    public static let edgeLabel = "node-role.kubernetes.io/edge"

    public let configuration: Configuration
    let client: KubeClient
    let hub: CloudHub
    private let sender: NodeObjectSender
    let logger: Logger
    let pods: Informer
    /// The Events it writes: its own (node readiness) and those the edges' kubelets report.
    let events: EventRecorder
    private let configMaps: Informer
    private let secrets: Informer
    private let services: Informer
    private let endpoints: Informer
    private let nodes: Informer
    private let changes: (stream: AsyncStream<Void>, continuation: AsyncStream<Void>.Continuation)

    struct State {
        var online: Set<String> = []
        /// Nodes this controller registered from a connection, before their first status report
        /// said which labels they ask for.
        var registeredWithoutLabels: Set<String> = []
        /// When (``ServiceClock/monotonic``) each node that went away is marked not ready,
        /// unless it comes back first.
        var leaving: [String: Duration] = [:]
        var counters = Counters()
    }
    let state = Mutex(State())

    /// - Parameter sync: keeps what each node was sent across restarts; without it, a restarted
    ///   controller sends every node everything again and misses deletes made while it was down.
    public init(client: KubeClient, hub: CloudHub, sync: SyncController? = nil, configuration: Configuration = Configuration(),
                logger: Logger = Logger(label: "edgecontroller")) {
        self.client = client
        self.hub = hub
        self.configuration = configuration
        self.logger = logger
        pods = Informer(client: client, resource: APIResource(Kube.Pod.self))
        events = EventRecorder(client: client, component: "edgecontroller")
        configMaps = Informer(client: client, resource: APIResource(Kube.ConfigMap.self))
        secrets = Informer(client: client, resource: APIResource(Kube.Secret.self))
        services = Informer(client: client, resource: APIResource(Kube.Service.self))
        endpoints = Informer(client: client, resource: APIResource(Kube.Endpoints.self))
        nodes = Informer(client: client, resource: APIResource(Kube.Node.self), configuration: .init(labelSelector: Self.edgeLabel))
        let changes = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        self.changes = changes
        sender = NodeObjectSender(hub: hub, sync: sync, kinds: ["pod", "configmap", "secret", "service", "endpoints"], group: "resource", source: "edgecontroller",
                                  logger: logger, wake: { changes.continuation.yield() })
    }

    public var counters: Counters {
        let sent = sender.counters
        var counters = state.withLock { $0.counters }
        counters.objectsSent = sent.objectsSent
        counters.deletesSent = sent.deletesSent
        counters.failures += sent.failures
        return counters
    }

    /// The nodes that went away and whose grace period is still running.
    public var nodesInGracePeriod: Set<String> { state.withLock { Set($0.leaving.keys) } }

    /// Runs the informers, the send loop, the node watch and the nodes' grace periods, each a
    /// child task, until graceful shutdown or cancellation.
    public func run() async {
        // What an edge is sent leaves the status out, and only the edge nodes' names matter:
        // an edge reporting its pods' or its own status does not call for a pass.
        let followed: [InformerDriven.Followed] = [
            .init(pods) { $0.changesMoreThanStatus }, .init(configMaps), .init(secrets), .init(services), .init(endpoints),
            .init(nodes) { if case .updated = $0 { false } else { true } },
        ]
        await cancelWhenGracefulShutdown { [self] in
            await withDiscardingTaskGroup { children in
                for source in followed {
                    children.addTask { await source.informer.run() }
                    children.addTask { [changes] in
                        for await event in source.informer.events where source.isRelevant(event) { changes.continuation.yield() }
                    }
                }
                children.addTask { [changes] in
                    if await InformerDriven.waitUntilSynced(followed.map(\.informer)) { changes.continuation.yield() }
                }
                children.addTask { [self] in await sendLoop() }
                children.addTask { [self] in
                    for await event in hub.events { await handle(event) }
                }
                children.addTask { [self] in await graceLoop() }
                children.addTask { [sender] in await sender.run() }
            }
        }
        changes.continuation.finish()
        state.withLock { $0.leaving = [:] }
    }

    // MARK: sending objects

    private func sendLoop() async {
        for await _ in changes.stream {
            guard [pods, configMaps, secrets, services, endpoints, nodes].allSatisfy(\.hasSynced) else { continue }
            try? await Task.sleep(for: configuration.batchInterval)
            await sender.send(wanted())
        }
    }

    /// The objects each edge node should hold now.
    private func wanted() -> [String: [EdgeObjectKey: JSONValue]] {
        var edgeNodes = Set(nodes.objects.compactMap { $0[path: ["metadata", "name"]]?.stringValue })
        edgeNodes.formUnion(state.withLock { $0.online })
        var wanted: [String: [EdgeObjectKey: JSONValue]] = [:]
        for node in edgeNodes { wanted[node] = [:] }
        let services = PodServices(services: services.objects)
        for pod in pods.objects {
            guard let node = pod[path: ["spec", "nodeName"]]?.stringValue, edgeNodes.contains(node),
                  let key = PodReferences.key(of: pod, type: "pod") else { continue }
            wanted[node]?[key] = pod
            for reference in PodReferences.of(pod) {
                let informer = reference.kind == "configmap" ? configMaps : secrets
                if let object = informer.get(namespace: reference.namespace, name: reference.name) { wanted[node]?[reference] = object }
            }
            for (service, object) in services.selecting(pod) {
                wanted[node]?[service] = object
                let endpointsKey = EdgeObjectKey(kind: "endpoints", namespace: service.namespace, name: service.name)
                if let object = endpoints.get(namespace: service.namespace, name: service.name) { wanted[node]?[endpointsKey] = object }
            }
        }
        return wanted
    }

    // MARK: from the edge

    /// Takes a message from a node if it is one for this controller (a pod's or the node's
    /// status); `false` when it is not.
    public func handle(_ incoming: NodeMessage) async -> Bool {
        let parts = incoming.message.router.resource.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 3 else { return false }
        let operation = incoming.message.router.operation
        switch (parts[1], operation) {
        case ("podstatus", _): await handlePodStatus(incoming, namespace: String(parts[0]), name: String(parts[2]))
        case ("nodestatus", _): await handleNodeStatus(incoming, name: String(parts[2]))
        case ("pod", MessageRouter.Operation.delete): await handleFinalDelete(incoming, namespace: String(parts[0]), name: String(parts[2]))
        case ("serviceaccounttoken", MessageRouter.Operation.query):
            await handleTokenRequest(incoming, namespace: String(parts[0]), account: String(parts[2]))
        case ("event", _): await handleEvent(incoming, namespace: String(parts[0]), name: String(parts[2]))
        default: return false
        }
        return true
    }

    private func handlePodStatus(_ incoming: NodeMessage, namespace: String, name: String) async {
        guard let report = try? JSONValue(parsing: String(buffer: incoming.message.content)), let status = report["status"] else {
            state.withLock { $0.counters.podStatusesDropped += 1 }
            return
        }
        // Only the node the pod is bound to, and only for this pod (not an earlier one of the name).
        guard let pod = pods.get(namespace: namespace, name: name), pod[path: ["spec", "nodeName"]]?.stringValue == incoming.node,
              report[path: ["metadata", "uid"]] == nil || report[path: ["metadata", "uid"]] == pod[path: ["metadata", "uid"]] else {
            state.withLock { $0.counters.podStatusesDropped += 1 }
            return
        }
        do {
            _ = try await client.patch(APIResource(Kube.Pod.self), namespace: namespace, name: name, .object(JSONObject([("status", status)])), status: true)
            state.withLock { $0.counters.podStatusesWritten += 1 }
        } catch {
            state.withLock { $0.counters.failures += 1 }
            logger.warning("cannot write a pod's status", metadata: ["pod": "\(namespace)/\(name)", "error": "\(error)"])
        }
    }

    /// Writes a node's own status report (`{ns}/nodestatus/{node}`) to its Node, keeping the
    /// `Ready` transition time unless the verdict changed, and renews its Lease.
    private func handleNodeStatus(_ incoming: NodeMessage, name: String) async {
        guard name == incoming.node, let report = try? JSONValue(parsing: String(buffer: incoming.message.content)),
              var status = report["status"]?.objectValue else {
            state.withLock { $0.counters.nodeStatusesDropped += 1 }
            return
        }
        let current = nodes.get(name: name).map(Kube.Node.init(json:))
        let now = configuration.clock.wallTime
        if let conditions = status["conditions"] {
            status["conditions"] = .array((conditions.arrayValue ?? []).map { condition in
                guard var reported = condition.objectValue, let type = reported["type"]?.stringValue else { return condition }
                let previous = current?.conditions.first { $0.type == type }
                if let previous, previous.status == reported["status"]?.stringValue, let since = previous.json["lastTransitionTime"] {
                    reported["lastTransitionTime"] = since
                } else {
                    reported["lastTransitionTime"] = .string(now.formatted(.iso8601))
                }
                return .object(reported)
            })
        }
        let wasReady = current?.conditions.first { $0.type == "Ready" }?.status == "True"
        let isReady = status["conditions"]?.arrayValue?.first { $0["type"]?.stringValue == "Ready" }?["status"]?.stringValue == "True"
        let labels = NodeLabels.allowed(report[path: ["metadata", "labels"]]?.objectValue ?? JSONObject(), node: name, logger: logger)
        do {
            try await ensureNode(name, labels: labels)
            if state.withLock({ $0.registeredWithoutLabels.remove(name) }) != nil, !labels.isEmpty {
                _ = try await client.patch(APIResource(Kube.Node.self), name: name,
                                           .object(JSONObject([("metadata", .object(JSONObject([("labels", .object(labels))])))])))
            }
            _ = try await client.patch(APIResource(Kube.Node.self), name: name, .object(JSONObject([("status", .object(status))])), status: true)
            if wasReady != isReady, status["conditions"] != nil { await recordReadiness(of: name, ready: isReady) }
            try await renewLease(of: name, at: now)
            state.withLock { $0.counters.nodeStatusesWritten += 1 }
        } catch {
            state.withLock { $0.counters.failures += 1 }
            logger.warning("cannot write a node's status", metadata: ["node": "\(name)", "error": "\(error)"])
        }
    }

    /// The node's Lease in `kube-node-lease`, created on first use, renewed to `now`.
    private func renewLease(of node: String, at now: Date) async throws {
        let resource = APIResource(Kube.Lease.self)
        let renewTime = JSONValue.string(Self.microTime(now))
        do {
            _ = try await client.patch(resource, namespace: Self.leaseNamespace, name: node,
                                       .object(JSONObject([("spec", .object(JSONObject([("renewTime", renewTime), ("holderIdentity", .string(node))])))])))
        } catch let error as APIError where error.code == 404 {
            _ = try await client.create(resource, namespace: Self.leaseNamespace, .object(JSONObject([
                ("apiVersion", .string(Kube.Lease.apiVersion)), ("kind", .string(Kube.Lease.kind)),
                ("metadata", .object(JSONObject([("name", .string(node)), ("namespace", .string(Self.leaseNamespace))]))),
                ("spec", .object(JSONObject([
                    ("holderIdentity", .string(node)), ("leaseDurationSeconds", .integer(Int64(Self.leaseDurationSeconds))), ("renewTime", renewTime),
                ]))),
            ])))
        }
    }

    /// Where node Leases live, and how long one holds (kubelet's).
    public static let leaseNamespace = "kube-node-lease"
    public static let leaseDurationSeconds = 40

    /// RFC 3339 with microseconds (Kubernetes' MicroTime).
    static func microTime(_ date: Date) -> String {
        date.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true)).replacingOccurrences(of: "Z", with: "000Z")
    }

    // MARK: nodes

    private func handle(_ event: NodeEvent) async {
        switch event {
        case .online(let node, _, _):
            state.withLock { state in
                state.online.insert(node)
                state.leaving.removeValue(forKey: node)
            }
            await markReady(node, ready: true)
            changes.continuation.yield()
        case .offline(let node):
            let deadline = configuration.clock.monotonic + configuration.nodeNotReadyGracePeriod
            state.withLock { state in
                state.online.remove(node)
                state.leaving[node] = deadline
            }
        }
    }

    /// Marks not ready the nodes whose grace period ran out, checking a tenth of the period at
    /// a time (at least every 10 ms, at most every second), until cancelled.
    private func graceLoop() async {
        let tick = min(max(configuration.nodeNotReadyGracePeriod / 10, .milliseconds(10)), .seconds(1))
        while (try? await configuration.clock.sleep(for: tick)) != nil {
            let now = configuration.clock.monotonic
            let expired = state.withLock { state -> [String] in
                let expired = state.leaving.filter { $0.value <= now }.map(\.key)
                for node in expired { state.leaving.removeValue(forKey: node) }
                return expired
            }
            for node in expired.sorted() { await markReady(node, ready: false) }
        }
    }

    /// Registers the node when it has no Node object, and sets its `Ready` condition.
    private func markReady(_ node: String, ready: Bool) async {
        let now = configuration.clock.wallTime.formatted(.iso8601)
        let condition = JSONValue.object(JSONObject([
            ("type", .string("Ready")), ("status", .string(ready ? "True" : "Unknown")),
            ("reason", .string(ready ? "EdgeConnected" : "NodeStatusUnknown")),
            ("message", .string(ready ? "the edge node is connected to cloudcore" : "the edge node has been disconnected for longer than the grace period")),
            ("lastHeartbeatTime", .string(now)), ("lastTransitionTime", .string(now)),
        ]))
        do {
            guard try await ensureNode(node, create: ready) else { return }
            let wasReady = nodes.get(name: node).map(Kube.Node.init(json:))?.conditions.first { $0.type == "Ready" }?.status == "True"
            _ = try await client.patch(APIResource(Kube.Node.self), name: node,
                                       .object(JSONObject([("status", .object(JSONObject([("conditions", .array([condition]))])))])), status: true)
            if wasReady != ready { await recordReadiness(of: node, ready: ready) }
            try await setUnreachableTaint(on: node, present: !ready)
        } catch {
            state.withLock { $0.counters.failures += 1 }
            logger.warning("cannot update a node", metadata: ["node": "\(node)", "error": "\(error)"])
        }
    }

    /// The taint an edge node carries while it is away: new pods go elsewhere, its own keep
    /// running and bound (no `NoExecute`, so nothing is evicted, as KubeEdge users expect).
    public static let unreachableTaint = "node.kubernetes.io/unreachable"

    /// Adds or removes the `unreachable:NoSchedule` taint, keeping the node's other taints
    /// (conditional on the node's resourceVersion; read again after a conflict).
    private func setUnreachableTaint(on node: String, present: Bool) async throws {
        let resource = APIResource(Kube.Node.self)
        var current = nodes.get(name: node)
        for attempt in 1...3 {
            if current == nil || attempt > 1 { current = try await client.get(resource, name: node) }
            guard let object = current else { return }
            let taints = object[path: ["spec", "taints"]]?.arrayValue ?? []
            let others = taints.filter { !($0["key"]?.stringValue == Self.unreachableTaint && $0["effect"]?.stringValue == "NoSchedule") }
            guard present == (others.count == taints.count) else { return }
            var wanted = others
            if present {
                wanted.append(.object(JSONObject([
                    ("key", .string(Self.unreachableTaint)), ("effect", .string("NoSchedule")),
                    ("timeAdded", .string(configuration.clock.wallTime.formatted(.iso8601))),
                ])))
            }
            let patch = JSONValue.object(JSONObject([
                ("metadata", .object(JSONObject([("resourceVersion", object[path: ["metadata", "resourceVersion"]] ?? .null)]))),
                ("spec", .object(JSONObject([("taints", wanted.isEmpty ? .null : .array(wanted))]))),
            ]))
            do {
                _ = try await client.patch(resource, name: node, patch)
                return
            } catch let error as APIError where error.code == 409 && attempt < 3 {
                continue
            }
        }
    }

    /// The `NodeReady`/`NodeNotReady` event of a transition, whichever saw it: the node's own
    /// report or its connection.
    private func recordReadiness(of node: String, ready: Bool) async {
        // As Kubernetes reports it: a Node's events carry its name as the uid.
        let reference = JSONValue.object(JSONObject([("kind", .string("Node")), ("name", .string(node)), ("uid", .string(node)), ("apiVersion", .string("v1"))]))
        let verdict = ready ? "NodeReady" : "NodeNotReady"
        try? await events.record(reference, type: "Normal", reason: verdict, message: "Node \(node) status is now: \(verdict)")
    }

    /// Creates the node's Node object (labelled as an edge node) unless it exists; whether it
    /// exists now.
    @discardableResult
    private func ensureNode(_ node: String, create: Bool = true, labels: JSONObject = JSONObject()) async throws -> Bool {
        let resource = APIResource(Kube.Node.self)
        if nodes.get(name: node) != nil { return true }
        if (try? await client.get(resource, name: node)) != nil { return true }
        guard create else { return false }
        var allLabels = labels
        allLabels[Self.edgeLabel] = .string("")
        allLabels["kubernetes.io/hostname"] = .string(node)
        let object = JSONValue.object(JSONObject([
            ("apiVersion", .string("v1")), ("kind", .string("Node")),
            ("metadata", .object(JSONObject([("name", .string(node)), ("labels", .object(allLabels))]))),
        ]))
        do {
            _ = try await client.create(resource, object)
        } catch let error as APIError where error.code == 409 {
            return true  // registered meanwhile (a status report and the connection at once)
        }
        state.withLock { state in
            state.counters.nodesRegistered += 1
            if labels.isEmpty { state.registeredWithoutLabels.insert(node) }
        }
        logger.info("registered an edge node", metadata: ["node": "\(node)"])
        return true
    }
}
