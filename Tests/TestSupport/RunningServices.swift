import Logging
import ServiceLifecycle
import Synchronization

/// Services running for a test as the daemons run them (one `ServiceGroup`, started in order),
/// until ``stop()`` shuts them down gracefully in reverse order and waits for every `run()` to
/// return.
public final class RunningServices: Sendable {
    private let group: ServiceGroup
    private let task: Task<Void, any Error>
    private let ended = EndedFlag()

    /// Starts running `services`.
    public init(_ services: [any Service], logger: Logger = Logger(label: "test.services")) {
        let group = ServiceGroup(configuration: .init(services: services, gracefulShutdownSignals: [], logger: logger))
        self.group = group
        let ended = ended
        task = Task {
            defer { ended.value.store(true, ordering: .relaxed) }
            try await group.run()
        }
    }

    /// Starts running one service.
    public convenience init(_ service: any Service) {
        self.init([service])
    }

    /// Whether the services have all returned (or one threw).
    public var hasEnded: Bool { ended.value.load(ordering: .relaxed) }

    /// Shuts the services down gracefully and waits for them; rethrows what a service threw.
    public func stop() async throws {
        await group.triggerGracefulShutdown()
        try await task.value
    }
}

/// Whether a service group's run has returned.
private final class EndedFlag: Sendable {
    let value = Atomic<Bool>(false)
}
