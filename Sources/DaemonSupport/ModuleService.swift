import ServiceLifecycle

/// One module of a daemon as a lifecycle service: started when the service group runs, stopped
/// on graceful shutdown (the group stops services in reverse order of starting them).
public struct ModuleService: Service {
    /// The module's name, for logs.
    public let name: String
    private let start: @Sendable () async throws -> Void
    private let stop: @Sendable () async -> Void

    /// A module that `start` starts and `stop` stops.
    public init(name: String, start: @escaping @Sendable () async throws -> Void, stop: @escaping @Sendable () async -> Void) {
        self.name = name
        self.start = start
        self.stop = stop
    }

    public func run() async throws {
        try await start()
        try? await gracefulShutdown()
        await stop()
    }
}
