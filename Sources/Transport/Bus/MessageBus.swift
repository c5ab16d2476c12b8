import NIOCore
import Synchronization

/// The in-process message bus between the modules of one process (KubeEdge's beehive role).
///
/// Each module registers a name and a group and gets a ``BusEndpoint``, which implements the
/// same ``ChannelEndpoint`` contract as a network channel: a message goes to the module named in
/// `router.destination`, or, when that is empty, to every module of `router.group`. Each
/// module's lanes are bounded queues: `send` suspends while the receiver's lane is full.
public final class MessageBus: Sendable {
    /// Bounds of every module's lanes.
    public struct Configuration: Sendable {
        /// Bytes a module's lane may hold before senders to it suspend. Default 4 MiB.
        public var laneCapacityBytes: Int
        /// Lane numbers must be below this. Default 16.
        public var laneCount: Int
        /// Default timeout of ``BusEndpoint/request(_:on:timeout:)``. Default 30 s.
        public var requestTimeout: Duration

        public init(laneCapacityBytes: Int = 4 << 20, laneCount: Int = 16, requestTimeout: Duration = .seconds(30)) {
            self.laneCapacityBytes = laneCapacityBytes
            self.laneCount = laneCount
            self.requestTimeout = requestTimeout
        }
    }

    /// The bus configuration.
    public let configuration: Configuration
    private let modules = Mutex<[String: BusEndpoint]>([:])
    /// Which endpoint waits for the response to each outstanding request.
    private let pendingRequests = Mutex<[MessageID: BusEndpoint]>([:])

    func awaitResponse(to id: MessageID, at endpoint: BusEndpoint) {
        pendingRequests.withLock { $0[id] = endpoint }
    }

    func forgetRequest(_ id: MessageID) {
        _ = pendingRequests.withLock { $0.removeValue(forKey: id) }
    }

    /// The endpoint waiting for a response to `id`, removed from the table.
    func takeRequester(of id: MessageID) -> BusEndpoint? {
        pendingRequests.withLock { $0.removeValue(forKey: id) }
    }

    /// Creates an empty bus.
    public init(configuration: Configuration = Configuration()) {
        self.configuration = configuration
    }

    /// Registers a module; a second registration of the same name replaces the first (whose
    /// lane iterators end). A module that `acknowledgesHandling` calls ``BusEndpoint/handled(_:)``
    /// for each message once it is safe (stored, say); senders that asked to hear about it wait
    /// until then.
    public func register(module name: String, group: String, acknowledgesHandling: Bool = false) -> BusEndpoint {
        let endpoint = BusEndpoint(name: name, group: group, acknowledgesHandling: acknowledgesHandling, bus: self)
        let old = modules.withLock { modules in
            defer { modules[name] = endpoint }
            return modules[name]
        }
        old?.shutdown()
        return endpoint
    }

    /// Removes a module; its lane iterators end and messages to it fail with ``BusError/unknownDestination(_:)``.
    public func unregister(module name: String) {
        modules.withLock { $0.removeValue(forKey: name) }?.shutdown()
    }

    /// The endpoints a message is routed to.
    func route(_ message: Message) throws -> [BusEndpoint] {
        try modules.withLock { modules in
            if !message.router.destination.isEmpty {
                guard let endpoint = modules[message.router.destination] else {
                    throw BusError.unknownDestination(message.router.destination)
                }
                return [endpoint]
            }
            return try Self.members(of: message.router.group, in: modules)
        }
    }

    /// The endpoints of `group`'s modules.
    func route(toGroup group: String) throws -> [BusEndpoint] {
        try modules.withLock { try Self.members(of: group, in: $0) }
    }

    private static func members(of group: String, in modules: [String: BusEndpoint]) throws -> [BusEndpoint] {
        let members = modules.values.filter { $0.group == group }
        guard !members.isEmpty else { throw BusError.unknownDestination("group \(group)") }
        return members.sorted { $0.name < $1.name }
    }
}

/// Why the bus refused a message.
public enum BusError: Error, Sendable, Hashable {
    /// No module of that name or group is registered.
    case unknownDestination(String)
    /// The bus this endpoint belonged to no longer exists.
    case busReleased
}
