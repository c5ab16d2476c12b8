/// Receives a channel's connection and arrival events, so that one server task can serve the
/// messages of thousands of channels (with ``MessageChannel/pollMessage(on:)``) instead of one
/// task per channel and lane.
///
/// Calls arrive outside the channel's lock, usually on the connection's event loop: return
/// quickly and never block. The channel holds its observer weakly.
public protocol MessageChannelObserver: AnyObject, Sendable {
    /// A connection completed its HELLO exchange while none was announced. A connection that
    /// replaces an established one is not announced again.
    func channelConnected(_ channel: MessageChannel)
    /// The announced connection ended and no newer one replaced it, or the channel closed.
    func channelDisconnected(_ channel: MessageChannel)
    /// `lane` went from no buffered messages to some, with no consumer waiting in
    /// ``LaneMessages``. Called again only after a poll has found the lane empty.
    func channel(_ channel: MessageChannel, hasMessagesOn lane: Lane)
}

/// The channel's weak reference to its observer.
struct ObserverReference {
    weak var observer: (any MessageChannelObserver)?
}
