import Synchronization
import Transport

/// The tasks of one bus module: one per lane it serves (and any others it runs), started
/// together, and awaited together once the module has left the bus (which ends its lanes).
final class ModuleTasks: Sendable {
    private let tasks = Mutex<[Task<Void, Never>]>([])

    /// Lanes a module serves: every standard lane but control.
    static let servedLanes = Lane.standard.filter { $0 != .control }

    /// Starts `serve` once per served lane, beside `others`.
    func start(_ others: [Task<Void, Never>] = [], serve: @escaping @Sendable (Lane) async -> Void) {
        let started = others + Self.servedLanes.map { lane in Task { await serve(lane) } }
        tasks.withLock { $0 = started }
    }

    /// Takes `module` off `bus` and waits for every task to end.
    func stop(leaving bus: MessageBus, module: String) async {
        bus.unregister(module: module)
        let running = tasks.withLock { tasks -> [Task<Void, Never>] in defer { tasks = [] }; return tasks }
        for task in running { await task.value }
    }
}
