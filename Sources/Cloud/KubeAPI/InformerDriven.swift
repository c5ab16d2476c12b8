import ServiceLifecycle

/// The loop of a controller driven by informers: runs each informer, and `pass` after any of
/// them reports a change (changes that arrive meanwhile are folded into one pass) once all have
/// synced, until graceful shutdown or cancellation.
enum InformerDriven {
    static func run(_ informers: [Informer], pass: @escaping @Sendable () async -> Void) async {
        let changes = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { children in
                for informer in informers {
                    children.addTask { await informer.run() }
                    children.addTask {
                        for await _ in informer.events { changes.continuation.yield() }
                    }
                }
                children.addTask {
                    for await _ in changes.stream where informers.allSatisfy(\.hasSynced) { await pass() }
                }
            }
        }
        changes.continuation.finish()
    }
}
