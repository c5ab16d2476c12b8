import NIOCore
import Synchronization

/// A change a ``WatchHub`` orders: every event carries the store revision that made it.
public protocol RevisionedEvent: Sendable {
    /// The revision of the change (strictly increasing across a store's events).
    var revision: Int64 { get }
}

/// Why a watch could not start.
public enum WatchHubError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Changes after `requested` are no longer kept: history was compacted through `compacted`
    /// (Kubernetes answers 410 Gone; the watcher lists again).
    case tooOld(requested: Int64, compacted: Int64)
    /// The store could not read its history.
    case historyUnavailable(String)

    public var description: String {
        switch self {
        case .tooOld(let requested, let compacted): "too old resource version: \(requested) (\(compacted))"
        case .historyUnavailable(let why): "cannot read the change history: \(why)"
        }
    }
}

/// Limits of a ``WatchHub``.
public struct WatchHubConfiguration: Sendable, Hashable {
    /// The newest changes kept in memory, from which a watch resumes without reading the store.
    /// Older ones (back to the compacted revision) come from the store's history. Default 1,000.
    public var memoryHistory: Int
    /// Changes buffered per watcher; a watcher that falls further behind is evicted (its stream
    /// ends and it lists again) without slowing writers or other watchers. Default 10,000.
    public var watcherBuffer: Int

    /// Creates limits.
    public init(memoryHistory: Int = 1_000, watcherBuffer: Int = 10_000) {
        self.memoryHistory = memoryHistory
        self.watcherBuffer = watcherBuffer
    }
}

/// The revisioned watch machinery both object stores share: the current and compacted
/// revisions, a bounded history of recent changes, and the watchers, each with a bounded buffer.
///
/// A store publishes its changes after they commit, in revision order (from its database's
/// writer thread, ``Transaction/afterCommit(_:)``). A watch starts after a revision: changes
/// after it come from memory when it is recent, otherwise from the store's persisted history
/// (``HistoryLoader``) while live changes wait in the watcher's buffer; a revision older than
/// compaction is ``WatchHubError/tooOld(requested:compacted:)``.
public final class WatchHub<Event: RevisionedEvent, Scope: Sendable>: Sendable {
    /// Whether a change belongs to a watcher's scope (its resource and namespace).
    public typealias Matcher = @Sendable (Event, Scope) -> Bool
    /// Reads persisted changes in `(after, through]` that match the scope, in revision order.
    public typealias HistoryLoader = @Sendable (_ after: Int64, _ through: Int64, _ scope: Scope) async throws -> [Event]

    /// The hub's limits.
    public let configuration: WatchHubConfiguration
    private let matches: Matcher
    private let history: HistoryLoader?
    private let state: Mutex<State>

    private struct State: ~Copyable {
        var revision: Int64
        var compacted: Int64
        var recent = CircularBuffer<Event>()
        var watchers: [Int: Watcher] = [:]
        var nextID = 0
    }

    private struct Watcher {
        var scope: Scope
        /// Changes at or before this revision are not for this watcher.
        var after: Int64
        var continuation: AsyncStream<Event>.Continuation
        /// Live changes held while the history is read; `nil` once live.
        var held: [Event]?
    }

    /// Creates a hub at `revision`, whose history reaches back to `compacted` (exclusive).
    public init(revision: Int64, compacted: Int64, configuration: WatchHubConfiguration = WatchHubConfiguration(),
                matches: @escaping Matcher, history: HistoryLoader?) {
        self.configuration = configuration
        self.matches = matches
        self.history = history
        state = Mutex(State(revision: revision, compacted: min(compacted, revision)))
    }

    /// The revision of the newest published change.
    public var revision: Int64 { state.withLock { $0.revision } }

    /// Watches must start at or after this revision.
    public var compactedRevision: Int64 { state.withLock { $0.compacted } }

    /// Watchers registered now.
    public var watcherCount: Int { state.withLock { $0.watchers.count } }

    /// Hands committed `events` (in revision order) to the watchers whose scope they match.
    public func publish(_ events: some Sequence<Event>) {
        var evicted: [AsyncStream<Event>.Continuation] = []
        state.withLock { state in
            for event in events {
                state.recent.append(event)
                if state.recent.count > configuration.memoryHistory { state.recent.removeFirst() }
                state.revision = max(state.revision, event.revision)
                for (id, watcher) in state.watchers where event.revision > watcher.after && matches(event, watcher.scope) {
                    if state.watchers[id]!.held != nil {
                        if state.watchers[id]!.held!.count >= configuration.watcherBuffer {
                            evicted.append(state.watchers.removeValue(forKey: id)!.continuation)
                        } else {
                            state.watchers[id]!.held!.append(event)
                        }
                    } else if case .dropped = watcher.continuation.yield(event) {
                        evicted.append(state.watchers.removeValue(forKey: id)!.continuation)
                    }
                }
            }
        }
        // Outside the lock: finishing runs the stream's termination handler, which locks.
        for continuation in evicted { continuation.finish() }
    }

    /// Moves the current revision to `revision` without a change to publish (nothing to tell).
    public func advance(to revision: Int64) {
        state.withLock { $0.revision = max($0.revision, revision) }
    }

    /// From now on, watches must start at or after `revision`.
    public func compact(through revision: Int64) {
        state.withLock { $0.compacted = max($0.compacted, min(revision, $0.revision)) }
    }

    /// Sends each live watcher the event `make` returns for its scope at the current revision
    /// (a bookmark), in order with its changes.
    public func broadcast(_ make: (Scope, Int64) -> Event?) {
        var evicted: [AsyncStream<Event>.Continuation] = []
        state.withLock { state in
            for (id, watcher) in state.watchers where watcher.held == nil {
                guard let event = make(watcher.scope, state.revision) else { continue }
                if case .dropped = watcher.continuation.yield(event) {
                    evicted.append(state.watchers.removeValue(forKey: id)!.continuation)
                }
            }
        }
        for continuation in evicted { continuation.finish() }
    }

    /// The changes in `scope` after `revision`, then every later one as it is published. The
    /// stream ends when the watcher falls ``WatchHubConfiguration/watcherBuffer`` changes behind.
    public func watch(_ scope: Scope, after revision: Int64) async throws(WatchHubError) -> AsyncStream<Event> {
        let (stream, continuation) = AsyncStream<Event>.makeStream(bufferingPolicy: .bufferingOldest(configuration.watcherBuffer))
        let start = try state.withLock { state throws(WatchHubError) -> WatchStart in
            guard revision >= state.compacted else { throw .tooOld(requested: revision, compacted: state.compacted) }
            let id = state.nextID
            state.nextID += 1
            let oldestInMemory = state.recent.first?.revision ?? state.revision + 1
            if revision >= oldestInMemory - 1 || revision >= state.revision || history == nil {
                if history == nil, revision < oldestInMemory - 1, revision < state.revision {
                    throw .tooOld(requested: revision, compacted: oldestInMemory - 1)
                }
                for event in state.recent where event.revision > revision && matches(event, scope) {
                    if case .dropped = continuation.yield(event) { return .live(-1) }
                }
                state.watchers[id] = Watcher(scope: scope, after: revision, continuation: continuation, held: nil)
                return .live(id)
            }
            state.watchers[id] = Watcher(scope: scope, after: state.revision, continuation: continuation, held: [])
            return .fromHistory(id, through: state.revision)
        }
        let id: Int
        switch start {
        case .live(let live):
            id = live
            if id < 0 { continuation.finish() }
        case .fromHistory(let registered, let through):
            id = registered
            continuation.onTermination = { [weak self] _ in self?.remove(id) }
            let loaded: [Event]
            do {
                loaded = try await history!(revision, through, scope)
            } catch {
                remove(id)
                continuation.finish()
                throw .historyUnavailable("\(error)")
            }
            try goLive(id, continuation: continuation, after: revision, loaded: loaded)
            return stream
        }
        continuation.onTermination = { [weak self] _ in self?.remove(id) }
        return stream
    }

    /// Yields the history read for watcher `id`, then what was held meanwhile, and makes it live.
    private func goLive(_ id: Int, continuation: AsyncStream<Event>.Continuation, after revision: Int64, loaded: [Event]) throws(WatchHubError) {
        var finish = false
        defer { if finish { continuation.finish() } }
        try state.withLock { state throws(WatchHubError) in
            guard revision >= state.compacted else {
                state.watchers.removeValue(forKey: id)
                finish = true
                throw .tooOld(requested: revision, compacted: state.compacted)
            }
            // Evicted while the history was read: its stream has ended.
            guard let held = state.watchers[id]?.held else { return }
            for event in loaded + held where event.revision > revision && matches(event, state.watchers[id]!.scope) {
                if case .dropped = continuation.yield(event) {
                    state.watchers.removeValue(forKey: id)
                    finish = true
                    return
                }
            }
            state.watchers[id]!.held = nil
        }
    }

    /// How a watch starts: live at once, or from the store's history up to `through`.
    private enum WatchStart {
        case live(Int)
        case fromHistory(Int, through: Int64)
    }

    private func remove(_ id: Int) {
        _ = state.withLock { $0.watchers.removeValue(forKey: id) }
    }
}
