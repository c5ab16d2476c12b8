import ServiceLifecycle
import Synchronization

/// The loop of a controller driven by informers: runs each informer, and `pass` after any of
/// them reports a change (changes that arrive meanwhile are folded into one pass) once all have
/// synced, until graceful shutdown or cancellation.
enum InformerDriven {
    static func run(_ informers: [Informer], pass: @escaping @Sendable () async -> Void) async {
        await run(informers) { () async -> Duration? in
            await pass()
            return nil
        }
    }

    /// As above, where a pass may ask to run again after a while even if nothing changes (a
    /// pod becoming available after `minReadySeconds`, a rollout's progress deadline); the
    /// earliest request that is still due wins.
    static func run(_ informers: [Informer], pass: @escaping @Sendable () async -> Duration?) async {
        let changes = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        let requeued = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        let due = DueInstant()
        await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { children in
                for informer in informers {
                    children.addTask { await informer.run() }
                    children.addTask {
                        for await _ in informer.events { changes.continuation.yield() }
                    }
                }
                children.addTask {
                    // Sleeps in short steps so that an earlier request made meanwhile is kept.
                    for await _ in requeued.stream {
                        while let instant = due.instant.withLock({ $0 }) {
                            let now = ContinuousClock.now
                            if now >= instant {
                                due.instant.withLock { if $0 == instant { $0 = nil } }
                                changes.continuation.yield()
                                break
                            }
                            guard (try? await Task.sleep(for: min(instant - now, .milliseconds(250)))) != nil else { return }
                        }
                    }
                }
                children.addTask {
                    for await _ in changes.stream where informers.allSatisfy(\.hasSynced) {
                        guard let delay = await pass() else { continue }
                        let instant = ContinuousClock.now + delay
                        due.instant.withLock { $0 = min($0 ?? instant, instant) }
                        requeued.continuation.yield()
                    }
                }
            }
        }
        changes.continuation.finish()
        requeued.continuation.finish()
    }
}

/// When an informer-driven controller asked to run again.
private final class DueInstant: Sendable {
    let instant = Mutex<ContinuousClock.Instant?>(nil)
}
