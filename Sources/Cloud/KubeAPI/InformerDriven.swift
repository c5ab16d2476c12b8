import ServiceLifecycle
import Synchronization

/// The loop of a controller driven by informers: runs each informer, and `pass` after any of
/// them reports a change (changes that arrive meanwhile are folded into one pass) once all have
/// synced, until graceful shutdown or cancellation.
enum InformerDriven {
    /// An informer a controller follows, and which of its changes call for a pass.
    struct Followed: Sendable {
        let informer: Informer
        let isRelevant: @Sendable (Informer.Event) -> Bool

        init(_ informer: Informer, when isRelevant: @escaping @Sendable (Informer.Event) -> Bool = { _ in true }) {
            self.informer = informer
            self.isRelevant = isRelevant
        }
    }

    static func run(_ informers: [Informer], pass: @escaping @Sendable () async -> Void) async {
        await run(informers.map { Followed($0) }) { () async -> Duration? in
            await pass()
            return nil
        }
    }

    /// As above, where a pass may ask to run again after a while even if nothing changes (a
    /// pod becoming available after `minReadySeconds`, a rollout's progress deadline); the
    /// earliest request that is still due wins.
    static func run(_ informers: [Informer], pass: @escaping @Sendable () async -> Duration?) async {
        await run(informers.map { Followed($0) }, pass: pass)
    }

    /// As above, passing only on the changes each followed informer deems relevant.
    static func run(_ followed: [Followed], pass: @escaping @Sendable () async -> Duration?) async {
        let informers = followed.map(\.informer)
        let changes = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        let requeued = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        let due = DueInstant()
        await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { children in
                for source in followed {
                    children.addTask { await source.informer.run() }
                    children.addTask {
                        for await event in source.informer.events where source.isRelevant(event) { changes.continuation.yield() }
                    }
                }
                children.addTask {
                    // The first pass, once every cache is filled, whether or not any change in
                    // them was relevant (a Job whose pods are all gone still needs its pass).
                    if await waitUntilSynced(informers) { changes.continuation.yield() }
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

    /// Returns once every informer has filled its cache (`true`), or when cancelled (`false`).
    static func waitUntilSynced(_ informers: [Informer]) async -> Bool {
        while !informers.allSatisfy(\.hasSynced) {
            guard (try? await Task.sleep(for: .milliseconds(20))) != nil else { return false }
        }
        return true
    }
}

/// When an informer-driven controller asked to run again.
private final class DueInstant: Sendable {
    let instant = Mutex<ContinuousClock.Instant?>(nil)
}
