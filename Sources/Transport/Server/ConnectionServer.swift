import NIOCore
import NIOPosix
import Synchronization

/// A TCP listener whose connections are served as `NIOAsyncChannel`s, each by a task started
/// the moment the connection is set up, so that none is ever left unserved.
///
/// NIO's async `bind` hands connections out through a stream; a connection accepted while the
/// listener closes (or while its consumer is cancelled) is dropped unserved, and NIO traps when
/// an unused `NIOAsyncChannel` is released ("Deinited NIOAsyncWriter without calling finish()",
/// apple/swift-nio#2813). Here the child initializer starts the serving task itself, and
/// ``stop()`` closes the listener and every connection and then waits for their tasks.
package final class ConnectionServer<Inbound: Sendable, Outbound: Sendable>: Sendable {
    /// Serves one connection: its async wrapper, and the NIO channel (peer certificate, close
    /// future). The connection closes when this returns.
    package typealias Serve = @Sendable (NIOAsyncChannel<Inbound, Outbound>, any Channel) async -> Void

    private struct State {
        var stopping = false
        var accepted = 0
        var connections: [ObjectIdentifier: (channel: any Channel, task: Task<Void, Never>?)] = [:]
    }

    private let state = Mutex(State())
    private let listener = Mutex<(any Channel)?>(nil)

    package init() {}

    /// Binds and starts serving; returns the bound port. `configure` adds the connection's
    /// handlers (TLS, HTTP) synchronously on its event loop.
    package func start(host: String, port: Int, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton, backlog: Int32 = 256,
                       configure: @escaping @Sendable (any Channel) throws -> Void, serve: @escaping Serve) async throws -> Int {
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: backlog)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture { [self] in
                    try configure(channel)
                    try accept(channel, serve: serve)
                }
            }
            .bind(host: host, port: port)
            .get()
        listener.withLock { $0 = channel }
        return channel.localAddress?.port ?? port
    }

    /// Runs on the connection's event loop: wraps it and starts its task at once.
    private func accept(_ channel: any Channel, serve: @escaping Serve) throws {
        let id = ObjectIdentifier(channel)
        let admitted = state.withLock { state in
            guard !state.stopping else { return false }
            state.accepted += 1
            state.connections[id] = (channel, nil)
            return true
        }
        guard admitted else { throw ChannelError.ioOnClosedChannel }
        let wrapped = try NIOAsyncChannel<Inbound, Outbound>(wrappingChannelSynchronously: channel)
        let task = Task { [self] in
            await serve(wrapped, channel)
            _ = state.withLock { $0.connections.removeValue(forKey: id) }
        }
        state.withLock { state in
            if state.connections[id] != nil { state.connections[id]?.task = task }
        }
    }

    /// Connections open now, and accepted since start.
    package var connections: (open: Int, accepted: Int) { state.withLock { ($0.connections.count, $0.accepted) } }

    /// Stops accepting, closes every connection (ending its task's reads and writes) and waits
    /// for the tasks to finish.
    package func stop() async {
        let channel = listener.withLock { listener in defer { listener = nil }; return listener }
        try? await channel?.close()
        let open = state.withLock { state in
            state.stopping = true
            return Array(state.connections.values)
        }
        for connection in open { connection.channel.close(promise: nil) }
        for connection in open { await connection.task?.value }
        // One registered while the flag was being set: closed now, its task ends soon.
        while let pending = state.withLock({ $0.connections.values.first }) {
            pending.channel.close(promise: nil)
            if let task = pending.task { await task.value } else { try? await Task.sleep(for: .milliseconds(1)) }
        }
    }
}
