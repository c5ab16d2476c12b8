import KubeModel
import Cloud
import CloudHub
import EdgeHub
import Node
import ServiceLifecycle
import Synchronization

/// The long-running parts a test started, by identity: each runs in its own `RunningServices`
/// until the test stops it.
private let runningModules = Mutex<[ObjectIdentifier: RunningServices]>([:])

/// Starts `service` as a daemon would run it (its `run()` in a service group).
private func startRunning(_ service: some Service & AnyObject) {
    let running = RunningServices(service)
    runningModules.withLock { $0[ObjectIdentifier(service)] = running }
}

/// Shuts `service` down gracefully and waits for its `run()` to return.
private func stopRunning(_ service: some Service & AnyObject) async {
    guard let running = runningModules.withLock({ $0.removeValue(forKey: ObjectIdentifier(service)) }) else { return }
    try? await running.stop()
}

/// A long-running part a test starts and stops by hand (the product only ever runs them as
/// services): ``start()`` runs it in a service group, ``stop()`` shuts it down gracefully and
/// waits for its `run()` to return.
public protocol StartedByTests: Service, AnyObject {}

extension StartedByTests {
    public func start() { startRunning(self) }
    public func stop() async { await stopRunning(self) }
}

extension MetaManager: StartedByTests {}
extension DeviceTwin: StartedByTests {}
extension ServiceBus: StartedByTests {}
extension Edged: StartedByTests {}
extension EdgeHub: StartedByTests {}
extension EdgeController: StartedByTests {}
extension DeviceController: StartedByTests {}

extension EventBus {
    /// Connects first (so that a broker that does not answer fails here, as `run()` would),
    /// then runs the module.
    public func start() async throws {
        try await startConnected(self)
    }

    public func stop() async { await stopRunning(self) }
}

/// Runs `eventBus` and returns once it connected, or throws what its `run()` threw.
private func startConnected(_ eventBus: EventBus) async throws {
    let running = RunningServices(eventBus)
    runningModules.withLock { $0[ObjectIdentifier(eventBus)] = running }
    let deadline = ContinuousClock.now + (eventBus.configuration.connectTimeout ?? .zero) + .seconds(1)
    while !eventBus.isConnected, eventBus.configuration.connectTimeout != nil {
        if ContinuousClock.now > deadline || running.hasEnded {
            runningModules.withLock { _ = $0.removeValue(forKey: ObjectIdentifier(eventBus)) }
            try await running.stop()
            throw EventBusStartError()
        }
        try await Task.sleep(for: .milliseconds(5))
    }
}

/// EventBus's `run()` ended before it connected without saying why.
public struct EventBusStartError: Error {}

/// A server a test binds and runs by hand.
public protocol BoundByTests: Service, AnyObject {
    func bind() async throws -> Int
}

extension BoundByTests {
    /// Binds and runs the server; the bound port.
    @discardableResult
    public func start() async throws -> Int {
        let port = try await bind()
        startRunning(self)
        return port
    }

    public func stop() async { await stopRunning(self) }
}

extension MetaServer: BoundByTests {}
extension APIServer: BoundByTests {}

/// Informers a test started, by identity.
private let runningInformers = Mutex<[ObjectIdentifier: Task<Void, Never>]>([:])

extension Informer {
    /// Runs the informer until ``stop()``.
    public func start() {
        let task = Task { await run() }
        runningInformers.withLock { $0[ObjectIdentifier(self)] = task }
    }

    /// Cancels the informer's run and waits for it (its events end).
    public func stop() async {
        guard let task = runningInformers.withLock({ $0.removeValue(forKey: ObjectIdentifier(self)) }) else { return }
        task.cancel()
        await task.value
    }
}

extension KubeClient {
    /// The watch as a stream, for tests that read events one by one: the watch runs in a task
    /// the stream's end cancels.
    public func watchStream(_ resource: APIResource, namespace: String? = nil, resourceVersion: String) -> AsyncThrowingStream<WatchEvent, any Error> {
        AsyncThrowingStream { continuation in
            let task = Task {
                do {
                    try await watch(resource, namespace: namespace, resourceVersion: resourceVersion) { continuation.yield($0) }
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }

    /// ``watchStream(_:namespace:resourceVersion:)`` with typed objects.
    public func watchStream<Object: KubeObject>(_ type: Object.Type, namespace: String? = nil, resourceVersion: String)
        -> AsyncThrowingStream<TypedWatchEvent<Object>, any Error> {
        AsyncThrowingStream { continuation in
            let task = Task {
                do {
                    try await watch(type, namespace: namespace, resourceVersion: resourceVersion) { continuation.yield($0) }
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }
}
