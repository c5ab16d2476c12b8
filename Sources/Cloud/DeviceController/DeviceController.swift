import CloudHub
import Foundation
import KubeModel
import Logging
import ServiceLifecycle
import NIOCore
import Synchronization
import Transport

/// KubeEdge's DeviceController: sends each `devices.kubeedge.io/v1beta1` Device to the edge
/// node named in its `spec.nodeName`, for the node's DeviceTwin (group `twin`, resource
/// `{namespace}/device/{name}`), and writes what the node reports of its devices back to each
/// Device's status.
///
/// - Down: a Device goes with its DeviceModel's property types filled into
///   `spec.properties[].desired.metadata.type` where the Device leaves them out, so that a
///   changed model reaches the edge as well. Desired values become the twin's expected values
///   there, and devices get the delta over MQTT. Moving a Device to another node deletes it at
///   the first; deleting it deletes it at its node. Sending is a ``NodeObjectSender``: only
///   changes, with `state(key)` delivery, recorded by the ``SyncController``.
/// - Up: `{namespace}/devicestatus/{name}` from the device's own node (what DeviceTwin reports:
///   state, last online time and every reported value) becomes `status.state`,
///   `status.lastOnlineTime` and `status.twins[]` (`propertyName`, `reported`,
///   `observedDesired`). Reports from another node, for an unknown device, or malformed are
///   dropped and counted.
public final class DeviceController: Service, Sendable {
    public struct Configuration: Sendable {
        /// Changes arriving within this time are sent together.
        public var batchInterval: Duration

        public init(batchInterval: Duration = .milliseconds(20)) {
            self.batchInterval = batchInterval
        }
    }

    /// What the controller counted.
    public struct Counters: Sendable, Equatable {
        public var devicesSent = 0
        public var deletesSent = 0
        public var statusesWritten = 0
        public var statusesDropped = 0
        public var failures = 0
    }

    public let configuration: Configuration
    private let client: KubeClient
    private let hub: CloudHub
    private let sender: NodeObjectSender
    private let logger: Logger
    private let devices: Informer
    private let models: Informer
    private let nodes: Informer
    private let changes: (stream: AsyncStream<Void>, continuation: AsyncStream<Void>.Continuation)
    private let counters = Mutex(Counters())

    /// - Parameter sync: keeps what each node was sent across restarts (see ``EdgeController``).
    public init(client: KubeClient, hub: CloudHub, sync: SyncController? = nil, configuration: Configuration = Configuration(),
                logger: Logger = Logger(label: "devicecontroller")) {
        self.client = client
        self.hub = hub
        self.configuration = configuration
        self.logger = logger
        devices = Informer(client: client, resource: APIResource(Kube.Device.self))
        models = Informer(client: client, resource: APIResource(Kube.DeviceModel.self))
        nodes = Informer(client: client, resource: APIResource(Kube.Node.self), configuration: .init(labelSelector: EdgeController.edgeLabel))
        let changes = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        self.changes = changes
        sender = NodeObjectSender(hub: hub, sync: sync, kinds: ["device"], group: "twin", source: "devicecontroller",
                                  logger: logger, wake: { changes.continuation.yield() })
    }

    public var statistics: Counters {
        let sent = sender.counters
        var counters = counters.withLock { $0 }
        counters.devicesSent = sent.objectsSent
        counters.deletesSent = sent.deletesSent
        counters.failures += sent.failures
        return counters
    }

    /// Runs the informers and the send loop, each a child task, until graceful shutdown or
    /// cancellation.
    public func run() async {
        let informers = [devices, models, nodes]
        await cancelWhenGracefulShutdown { [self] in
            await withDiscardingTaskGroup { children in
                for informer in informers {
                    children.addTask { await informer.run() }
                    children.addTask { [changes] in
                        for await _ in informer.events { changes.continuation.yield() }
                    }
                }
                children.addTask { [self] in
                    for await _ in changes.stream {
                        guard informers.allSatisfy(\.hasSynced) else { continue }
                        try? await Task.sleep(for: configuration.batchInterval)
                        await sender.send(wanted())
                    }
                }
                children.addTask { [sender] in await sender.run() }
            }
        }
        changes.continuation.finish()
    }

    // MARK: down

    /// The devices each edge node should hold now.
    private func wanted() -> [String: [EdgeObjectKey: JSONValue]] {
        var edgeNodes = Set(nodes.objects.compactMap { $0[path: ["metadata", "name"]]?.stringValue })
        edgeNodes.formUnion(hub.onlineNodes)
        var wanted: [String: [EdgeObjectKey: JSONValue]] = [:]
        for node in edgeNodes { wanted[node] = [:] }
        for device in devices.objects {
            let node = Kube.Device(json: device).nodeName
            guard edgeNodes.contains(node), let key = PodReferences.key(of: device, type: "device") else { continue }
            wanted[node]?[key] = withModelTypes(device, namespace: key.namespace)
        }
        return wanted
    }

    /// `device` with its model's property types filled in where it names none.
    private func withModelTypes(_ device: JSONValue, namespace: String) -> JSONValue {
        guard let modelName = Kube.Device(json: device).deviceModel, let model = models.get(namespace: namespace, name: modelName),
              let properties = device[path: ["spec", "properties"]]?.arrayValue else { return device }
        var types: [String: String] = [:]
        for property in model[path: ["spec", "properties"]].elements {
            if let name = property["name"]?.stringValue, let type = property["type"]?.stringValue { types[name] = type }
        }
        var result = device
        result.set(.array(properties.map { property in
            guard let name = property["name"]?.stringValue, let type = types[name], property[path: ["desired", "metadata", "type"]] == nil,
                  property["desired"] != nil else { return property }
            var filled = property
            filled.set(.string(type), at: ["desired", "metadata", "type"])
            return filled
        }), at: ["spec", "properties"])
        return result
    }

    // MARK: up

    /// Takes a message from a node if it is a device status report; `false` when it is not.
    public func handle(_ incoming: NodeMessage) async -> Bool {
        let parts = incoming.message.router.resource.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[1] == "devicestatus" else { return false }
        await handleStatus(incoming, namespace: parts[0].isEmpty ? "default" : String(parts[0]), name: String(parts[2]))
        return true
    }

    private func handleStatus(_ incoming: NodeMessage, namespace: String, name: String) async {
        guard let report = try? JSONValue(parsing: String(buffer: incoming.message.content)), let status = Self.status(from: report) else {
            drop("a malformed device report", incoming, name)
            return
        }
        guard let device = devices.get(namespace: namespace, name: name), Kube.Device(json: device).nodeName == incoming.node else {
            drop("a report for a device not bound to this node", incoming, name)
            return
        }
        do {
            _ = try await client.patch(APIResource(Kube.Device.self), namespace: namespace, name: name,
                                       .object(JSONObject([("status", status)])), status: true)
            counters.withLock { $0.statusesWritten += 1 }
        } catch {
            counters.withLock { $0.failures += 1 }
            logger.warning("cannot write a device's status", metadata: ["device": "\(namespace)/\(name)", "error": "\(error)"])
        }
    }

    private func drop(_ what: String, _ incoming: NodeMessage, _ name: String) {
        counters.withLock { $0.statusesDropped += 1 }
        logger.info("dropped \(what)", metadata: ["node": "\(incoming.node)", "device": "\(name)"])
    }

    /// The Device status a DeviceTwin report (`{"device", "state", "lastOnline", "twin":
    /// {name: {"actual": {"value", "metadata": {"timestamp"}}, "expected": …, "metadata":
    /// {"type"}}}}`) stands for; `nil` when the report is not one.
    public static func status(from report: JSONValue) -> JSONValue? {
        guard report.objectValue != nil else { return nil }
        var status = JSONObject()
        if let state = report["state"] {
            guard let state = state.stringValue else { return nil }
            status["state"] = .string(state)
        }
        if let lastOnline = report["lastOnline"] {
            guard let lastOnline = lastOnline.stringValue else { return nil }
            status["lastOnlineTime"] = .string(lastOnline)
        }
        guard let twin = report["twin"]?.objectValue ?? (report["twin"] == nil ? JSONObject() : nil) else { return nil }
        var twins: [JSONValue] = []
        for name in twin.keys.sorted() {
            guard let property = twin[name]?.objectValue else { return nil }
            var entry = JSONObject([("propertyName", .string(name))])
            if let reported = Self.value(property["actual"], type: property["metadata"]?["type"]?.stringValue) { entry["reported"] = reported }
            if let desired = Self.value(property["expected"], type: nil) { entry["observedDesired"] = desired }
            twins.append(.object(entry))
        }
        status["twins"] = .array(twins)
        return .object(status)
    }

    /// `{"value", "metadata": {"timestamp", "type"}}` (strings, as the CRD has them) of a twin value.
    private static func value(_ twinValue: JSONValue?, type: String?) -> JSONValue? {
        guard let twinValue, let value = twinValue["value"] else { return nil }
        var metadata = JSONObject()
        if let timestamp = twinValue[path: ["metadata", "timestamp"]] { metadata["timestamp"] = .string(timestamp.stringValue ?? timestamp.serialized) }
        if let type { metadata["type"] = .string(type) }
        var result = JSONObject([("value", .string(value.stringValue ?? value.serialized))])
        if !metadata.isEmpty { result["metadata"] = .object(metadata) }
        return .object(result)
    }
}
