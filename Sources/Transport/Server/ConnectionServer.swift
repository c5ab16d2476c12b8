import NIOCore
import NIOPosix
import Synchronization

/// A TCP listener whose connections are served as `NIOAsyncChannel`s, each by a child task of
/// ``run(serve:)``, so that none is ever left unserved and none outlives the server.
///
/// NIO's async `bind` hands connections out through a stream; a connection accepted while the
/// listener closes (or while its consumer is cancelled) is dropped unserved, and NIO traps when
/// an unused `NIOAsyncChannel` is released ("Deinited NIOAsyncWriter without calling finish()",
/// apple/swift-nio#2813). Here the child initializer wraps each connection at once and queues it
/// for ``run(serve:)``, which serves every queued connection, also those that come in while the
/// server stops (they are closed by then, so their serving ends at once).
package final class ConnectionServer<Inbound: Sendable, Outbound: Sendable>: Sendable {
    /// Serves one connection: its async wrapper, and the NIO channel (peer certificate, close
    /// future). The connection closes when this returns.
    package typealias Serve = @Sendable (NIOAsyncChannel<Inbound, Outbound>, any Channel) async -> Void

    private struct Accepted: Sendable {
        var wrapped: NIOAsyncChannel<Inbound, Outbound>
        var channel: any Channel
    }

    private struct State {
        var stopping = false
        var accepted = 0
        var connections: [ObjectIdentifier: any Channel] = [:]
        /// Accepted connections not yet handed to ``run(serve:)``.
        var queued: [Accepted] = []
        var taker: UnsafeContinuation<Accepted?, Never>?
    }

    private let state = Mutex(State())
    private let listener = Mutex<(any Channel)?>(nil)

    package init() {}

    /// Binds; returns the bound port. Connections wait for ``run(serve:)``. `configure` adds the
    /// connection's handlers (TLS, HTTP) synchronously on its event loop.
    package func bind(host: String, port: Int, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton, backlog: Int32 = 256,
                      configure: @escaping @Sendable (any Channel) throws -> Void) async throws -> Int {
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: backlog)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture { [self] in
                    try configure(channel)
                    try accept(channel)
                }
            }
            .bind(host: host, port: port)
            .get()
        listener.withLock { $0 = channel }
        return channel.localAddress?.port ?? port
    }

    /// Runs on the connection's event loop: wraps it and queues it for ``run(serve:)``.
    private func accept(_ channel: any Channel) throws {
        let id = ObjectIdentifier(channel)
        // Wrapped under the lock: a connection is either refused before it is wrapped, or handed
        // over (NIO traps when a wrapper is released unused).
        let (taker, accepted) = try state.withLock { state throws -> (UnsafeContinuation<Accepted?, Never>?, Accepted) in
            guard !state.stopping else { throw ChannelError.ioOnClosedChannel }
            let accepted = Accepted(wrapped: try NIOAsyncChannel<Inbound, Outbound>(wrappingChannelSynchronously: channel), channel: channel)
            state.accepted += 1
            state.connections[id] = channel
            guard let taker = state.taker else {
                state.queued.append(accepted)
                return (nil, accepted)
            }
            state.taker = nil
            return (taker, accepted)
        }
        taker?.resume(returning: accepted)
    }

    /// The next accepted connection; `nil` once the server stopped and every one was handed over.
    /// Not cancellable on purpose: stopping ends it, and no accepted connection is left behind.
    private func next() async -> Accepted? {
        await withUnsafeContinuation { (continuation: UnsafeContinuation<Accepted?, Never>) in
            let ready: Accepted?? = state.withLock { state in
                if !state.queued.isEmpty { return .some(state.queued.removeFirst()) }
                if state.stopping { return .some(nil) }
                state.taker = continuation
                return .none
            }
            if let ready { continuation.resume(returning: ready) }
        }
    }

    /// Serves every connection, each in a child task, until ``stop()`` or cancellation; then
    /// closes the listener and every connection and returns once all their tasks have ended.
    package func run(serve: @escaping Serve) async {
        await withTaskCancellationHandler {
            await withDiscardingTaskGroup { group in
                while let connection = await next() {
                    let id = ObjectIdentifier(connection.channel)
                    group.addTask { [self] in
                        await serve(connection.wrapped, connection.channel)
                        _ = state.withLock { $0.connections.removeValue(forKey: id) }
                    }
                }
            }
        } onCancel: {
            shutDown()
        }
    }

    /// Connections open now, and accepted since start.
    package var connections: (open: Int, accepted: Int) { state.withLock { ($0.connections.count, $0.accepted) } }

    /// Stops accepting and closes every connection (ending its task's reads and writes); the
    /// server's ``run(serve:)`` returns once their tasks have finished.
    package func stop() {
        shutDown()
    }

    private func shutDown() {
        listener.withLock { listener in defer { listener = nil }; return listener }?.close(promise: nil)
        let (open, taker) = state.withLock { state in
            state.stopping = true
            defer { state.taker = nil }
            return (Array(state.connections.values), state.taker)
        }
        for channel in open { channel.close(promise: nil) }
        // Waiting means nothing is queued: the serving loop ends.
        taker?.resume(returning: nil)
    }
}
