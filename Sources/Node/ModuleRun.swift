import ServiceLifecycle
import Transport

/// How a bus module's `run()` runs: one child task per lane it serves, plus its own loops, all
/// children of `run()`. Graceful shutdown (or cancellation) takes the module off the bus, which
/// ends its lanes once they have drained what was queued, and cancels its loops; `run()`
/// returns when every child has ended.
enum ModuleRun {
    /// Lanes a module serves: every standard lane but control.
    static let servedLanes = Lane.standard.filter { $0 != .control }

    /// Runs `serve` once per served lane and each of `loops` until the module leaves `bus`;
    /// `leaving` runs first (close a client, end a wait).
    static func run(module: String, bus: MessageBus, loops: [@Sendable () async -> Void] = [],
                    leaving: @escaping @Sendable () -> Void = {}, serve: @escaping @Sendable (Lane) async -> Void) async {
        let stop = ShutdownSignal()
        let leave: @Sendable () -> Void = {
            guard !stop.isTriggered else { return }
            leaving()
            bus.unregister(module: module)
            stop.trigger()
        }
        await withGracefulShutdownHandler {
            await withTaskCancellationHandler {
                await withDiscardingTaskGroup { children in
                    for lane in servedLanes { children.addTask { await serve(lane) } }
                    children.addTask {
                        await withDiscardingTaskGroup { running in
                            for loop in loops { running.addTask { await loop() } }
                            await stop.wait()
                            running.cancelAll()
                        }
                    }
                }
            } onCancel: {
                leave()
            }
        } onGracefulShutdown: {
            leave()
        }
    }
}
