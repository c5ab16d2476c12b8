import Foundation
import Logging
import ServiceLifecycle
import NIOCore
import Synchronization
import Transport

/// KubeEdge's EventBus: bridges the MQTT broker and the in-process bus.
/// - From MQTT: `$hw/events/device/…` and `$hw/events/node/…` go to DeviceTwin (module `twin`)
///   with the topic base64-encoded (URL alphabet) as resource; every other subscribed topic goes
///   to the cloud (through EdgeHub) unencoded, operation `upload`, group `user`, reliably.
/// - To MQTT: what modules send to `eventbus` with operation `publish` is published on the
///   topic named by its resource.
/// Subscriptions are renewed each time the broker connection comes back.
public final class EventBus: Service, Sendable {
    /// Where the broker is and what to subscribe to.
    public struct Configuration: Sendable {
        /// Broker address. Default `127.0.0.1`.
        public var host: String
        /// Broker port. Default 1883 (KubeEdge's external broker).
        public var port: Int
        /// MQTT client id. Default `eventbus-{node}`.
        public var clientID: String
        /// Optional credentials.
        public var username: String?
        public var password: String?
        /// Optional TLS: the CA file (and a client certificate and key).
        public var tlsCAFile: String?
        public var tlsCertificateFile: String?
        public var tlsKeyFile: String?
        /// Topics subscribed (KubeEdge's list by default).
        public var topics: [String]
        /// QoS of subscriptions and publications. Default 1.
        public var qos: Int
        /// Whether the broker keeps EventBus's subscriptions and queued QoS 1 messages while it
        /// is disconnected (MQTT clean session off). Default true.
        public var persistentSession = true
        /// How long ``EventBus/run()`` waits for the broker before failing; `nil` keeps trying in
        /// the background (edgecore: a broker down at start is not fatal). Default 5 s.
        public var connectTimeout: Duration? = .seconds(5)

        /// KubeEdge's EventBus subscriptions.
        public static let kubeEdgeTopics = [
            "$hw/events/upload/#", "SYS/dis/upload_records", "SYS/dis/upload_records/+", "$hw/events/device/+/state/update",
            "$hw/events/device/+/twin/+", "$hw/events/node/+/membership/get", "$ke/events/+/device/data/update",
            // Devices named {namespace}/{name} (KubeEdge 1.17 and later).
            "$hw/events/device/+/+/state/update", "$hw/events/device/+/+/twin/+",
        ]

        /// Creates a configuration with the documented defaults.
        public init(nodeName: String, host: String = "127.0.0.1", port: Int = 1883, topics: [String] = kubeEdgeTopics, qos: Int = 1) {
            self.host = host
            self.port = port
            clientID = "eventbus-\(nodeName)"
            self.topics = topics
            self.qos = qos
        }
    }

    /// The bus module name and group (KubeEdge's).
    public static let moduleName = "eventbus"
    public static let moduleGroup = "bus"
    /// Where twin topics go.
    public static let twinModule = "twin"

    public let configuration: Configuration
    private let client: MQTTClient
    /// Held strongly: the endpoint refers to its bus without owning it, and the bridging tasks
    /// (which hold this module) may outlive whoever created the bus.
    private let bus: MessageBus
    private let endpoint: BusEndpoint
    private let logger: Logger
    private let counters = Mutex(EventBusCounters())

    /// Creates the module and registers it on `bus`; nothing connects before ``run()``.
    public init(configuration: Configuration, bus: MessageBus, logger: Logger = Logger(label: "eventbus")) throws {
        self.configuration = configuration
        self.logger = logger
        // A persistent session: the broker keeps QoS 1 messages for EventBus while it reconnects.
        client = try MQTTClient(clientID: configuration.clientID, cleanSession: !configuration.persistentSession)
        if let username = configuration.username { try client.setCredentials(username: username, password: configuration.password) }
        if let ca = configuration.tlsCAFile {
            try client.setTLS(caFile: ca, certificateFile: configuration.tlsCertificateFile, keyFile: configuration.tlsKeyFile)
        }
        self.bus = bus
        endpoint = bus.register(module: Self.moduleName, group: Self.moduleGroup)
    }

    /// Connects to the broker (renewing the subscriptions on every connect), then bridges until
    /// graceful shutdown (or cancellation) disconnects it and takes the module off the bus.
    /// With ``Configuration/connectTimeout``, a broker that does not answer in time is an error;
    /// with `nil`, EventBus keeps trying in the background (what edgecore does: a broker down at
    /// start is not fatal) and modules' publications wait until it connects.
    public func run() async throws {
        try await connect()
        await ModuleRun.run(module: Self.moduleName, bus: bus, loops: [{ [self] in await fromBroker() }], leaving: { [client] in client.close() }) { [self] lane in
            await toBroker(lane: lane)
        }
    }

    /// Connects (or starts connecting) to the broker and sets up the subscriptions.
    private func connect() async throws {
        let connectTimeout = configuration.connectTimeout
        let client = client
        let configuration = configuration
        let logger = logger
        client.onConnected {
            for topic in configuration.topics {
                do {
                    try client.subscribe(topic, qos: configuration.qos)
                } catch {
                    logger.error("could not subscribe", metadata: ["topic": "\(topic)", "error": "\(error)"])
                }
            }
        }
        if let connectTimeout {
            try await client.connect(host: configuration.host, port: configuration.port, timeout: connectTimeout)
        } else {
            try client.connectInBackground(host: configuration.host, port: configuration.port)
        }
    }

    /// Whether the broker connection is up.
    public var isConnected: Bool { client.isConnected }

    /// What the bridge counted.
    public var statistics: EventBusCounters {
        var snapshot = counters.withLock { $0 }
        snapshot.droppedFromBroker = client.droppedMessages
        return snapshot
    }

    // MARK: bridging

    /// The bus message an MQTT message becomes, and the lane and module it goes to.
    static func route(_ message: MQTTMessage) -> (message: Message, destination: String, lane: Lane) {
        if message.topic.hasPrefix("$hw/events/device/") || message.topic.hasPrefix("$hw/events/node/") {
            let router = MessageRouter(
                source: moduleName, destination: twinModule, group: MessageRouter.Group.twin, operation: MessageRouter.Operation.publish,
                resource: base64URL(message.topic))
            return (Message(router: router, content: message.payload), twinModule, .events)
        }
        let router = MessageRouter(
            source: moduleName, destination: "edgehub", group: MessageRouter.Group.user, operation: MessageRouter.Operation.upload,
            resource: message.topic)
        return (Message(router: router, content: message.payload), "edgehub", .events)
    }

    /// The topic in KubeEdge's base64 (URL alphabet, padded) resource form.
    static func base64URL(_ topic: String) -> String { Base64URL.encode(topic) }

    private func fromBroker() async {
        for await mqttMessage in client.messages {
            let (message, destination, lane) = Self.route(mqttMessage)
            do {
                try await endpoint.send(message, on: lane, delivery: .reliable)
                counters.withLock { $0.fromBroker += 1 }
            } catch {
                counters.withLock { $0.undeliverable += 1 }
                logger.warning("no module for an MQTT message", metadata: ["topic": "\(mqttMessage.topic)", "destination": "\(destination)", "error": "\(error)"])
            }
        }
    }

    /// Returns once the broker connection is up; throws `CancellationError` when stopped.
    private func waitForBroker() async throws {
        while !client.isConnected {
            if client.isClosed { throw CancellationError() }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    private func toBroker(lane: Lane) async {
        for await message in endpoint.messages(on: lane) {
            guard message.router.operation == MessageRouter.Operation.publish, !message.router.resource.isEmpty else {
                counters.withLock { $0.ignored += 1 }
                continue
            }
            // While the broker is away the module waits here (its bus lane fills, then it
            // suspends) rather than losing what it sent; libmosquitto resends what was in flight.
            while true {
                do {
                    try await waitForBroker()
                    try client.publish(message.router.resource, payload: message.content, qos: configuration.qos)
                    counters.withLock { $0.toBroker += 1 }
                    break
                } catch let error as MQTTError where error.isConnectionLost {
                    continue
                } catch is CancellationError {
                    return
                } catch {
                    counters.withLock { $0.publishFailures += 1 }
                    logger.warning("could not publish", metadata: ["topic": "\(message.router.resource)", "error": "\(error)"])
                    break
                }
            }
        }
    }
}

/// What EventBus counted.
public struct EventBusCounters: Sendable, Equatable {
    /// MQTT messages handed to modules.
    public var fromBroker = 0
    /// Bus messages published to the broker.
    public var toBroker = 0
    /// MQTT messages for a module that is not registered.
    public var undeliverable = 0
    /// Publications the client refused (e.g. while disconnected).
    public var publishFailures = 0
    /// Bus messages that were not `publish`.
    public var ignored = 0
    /// MQTT messages dropped because the bridge fell behind.
    public var droppedFromBroker = 0
}
