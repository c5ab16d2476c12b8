import NIOCore
import Synchronization

/// The accepted connections of a server built on `NIOAsyncChannel`, so that stopping it ends
/// every one of them without cancelling its accept loop. (Cancelling that loop drops the
/// connections it has accepted but not yet handed out, and NIO traps when an unused
/// `NIOAsyncChannel` is released.) Register each channel in the child initializer; to stop,
/// close the listener, call ``closeAll()``, and let the accept loop run to its end, closing at
/// once (`executeThenClose`) every connection it still hands out while ``isClosing``.
package final class OpenConnections: Sendable {
    private struct State {
        var closing = false
        var accepted = 0
        var channels: [ObjectIdentifier: any Channel] = [:]
    }

    private let state = Mutex(State())

    package init() {}

    /// Tracks `channel` until it closes; when the server is stopping, closes it at once and
    /// throws, so that the child initializer creates no `NIOAsyncChannel` nobody will run.
    package func register(_ channel: any Channel) throws {
        let id = ObjectIdentifier(channel)
        let accepted = state.withLock { state in
            guard !state.closing else { return false }
            state.accepted += 1
            state.channels[id] = channel
            return true
        }
        guard accepted else {
            channel.close(promise: nil)
            throw ChannelError.ioOnClosedChannel
        }
        channel.closeFuture.whenComplete { [self] _ in _ = state.withLock { $0.channels.removeValue(forKey: id) } }
    }

    /// Whether ``closeAll()`` has been called.
    package var isClosing: Bool { state.withLock { $0.closing } }

    /// Connections open now.
    package var count: Int { state.withLock { $0.channels.count } }

    /// Connections registered so far.
    package var accepted: Int { state.withLock { $0.accepted } }

    /// Closes every open connection, and every one registered after this.
    package func closeAll() {
        let channels = state.withLock { state in
            state.closing = true
            return Array(state.channels.values)
        }
        for channel in channels { channel.close(promise: nil) }
    }
}
