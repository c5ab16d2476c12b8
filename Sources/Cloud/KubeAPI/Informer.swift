import KubeModel
import Synchronization

/// A local cache of one resource kept current by list and watch, in the manner of client-go's
/// informer: list, then watch from the list's resourceVersion; when a watch ends, watch again
/// from the last version seen (bookmarks included); on `410 Expired` list again and report the
/// differences; on other failures wait (doubling backoff) and list again.
public final class Informer: Sendable {
    /// A change to the cache.
    public enum Event: Sendable, Equatable {
        case added(JSONValue)
        case updated(old: JSONValue, new: JSONValue)
        case deleted(JSONValue)
    }

    /// How the informer watches.
    public struct Configuration: Sendable {
        public var namespace: String?
        public var labelSelector: String?
        public var fieldSelector: String?
        /// Each watch asks the server to end after this long (it then resumes). Default 300 s.
        public var watchTimeoutSeconds: Int
        /// Backoff after a failure, doubling to the maximum. Default 0.5 s to 30 s.
        public var initialBackoff: Duration
        public var maxBackoff: Duration

        public init(namespace: String? = nil, labelSelector: String? = nil, fieldSelector: String? = nil, watchTimeoutSeconds: Int = 300,
                    initialBackoff: Duration = .milliseconds(500), maxBackoff: Duration = .seconds(30)) {
            self.namespace = namespace
            self.labelSelector = labelSelector
            self.fieldSelector = fieldSelector
            self.watchTimeoutSeconds = watchTimeoutSeconds
            self.initialBackoff = initialBackoff
            self.maxBackoff = maxBackoff
        }
    }

    /// What the informer counted.
    public struct Counters: Sendable, Equatable {
        public var lists = 0
        public var watches = 0
        /// Lists forced by `410 Expired`.
        public var relistsAfterExpiry = 0
        public var failures = 0
    }

    private struct State {
        var objects: [String: JSONValue] = [:]
        var synced = false
        var counters = Counters()
    }

    public let resource: APIResource
    public let configuration: Configuration
    private let client: KubeClient
    private let state = Mutex(State())
    private let sink: AsyncStream<Event>.Continuation
    /// Changes to the cache, in order (bounded: a consumer that falls 100,000 behind loses the oldest).
    public let events: AsyncStream<Event>

    public init(client: KubeClient, resource: APIResource, configuration: Configuration = Configuration()) {
        self.client = client
        self.resource = resource
        self.configuration = configuration
        (events, sink) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(100_000))
    }


    /// Whether the first list has been applied.
    public var hasSynced: Bool { state.withLock { $0.synced } }
    public var counters: Counters { state.withLock { $0.counters } }

    /// The cached object, if any.
    public func get(namespace: String = "", name: String) -> JSONValue? {
        state.withLock { $0.objects["\(namespace)/\(name)"] }
    }

    /// Every cached object.
    public var objects: [JSONValue] { state.withLock { Array($0.objects.values) } }

    // MARK: the loop

    /// Lists and watches, again after every failure (with back-off) or `410 Expired`, until the
    /// calling task is cancelled; then ends ``events``.
    public func run() async {
        defer { sink.finish() }
        var backoff = configuration.initialBackoff
        while !Task.isCancelled {
            do {
                var version = try await relist()
                backoff = configuration.initialBackoff
                while !Task.isCancelled {
                    state.withLock { $0.counters.watches += 1 }
                    try await client.watch(
                        resource, namespace: configuration.namespace, resourceVersion: version, labelSelector: configuration.labelSelector,
                        fieldSelector: configuration.fieldSelector, timeoutSeconds: configuration.watchTimeoutSeconds
                    ) { event in
                        if let seen = event.object[path: ["metadata", "resourceVersion"]]?.stringValue { version = seen }
                        apply(event)
                    }
                }
            } catch let error as APIError where error.code == 410 {
                state.withLock { $0.counters.relistsAfterExpiry += 1 }
            } catch {
                if Task.isCancelled { return }
                state.withLock { $0.counters.failures += 1 }
                try? await Task.sleep(for: backoff)
                backoff = min(backoff * 2, configuration.maxBackoff)
            }
        }
    }

    /// Lists, replaces the cache, reports the differences; returns the list's version.
    private func relist() async throws -> String {
        let (items, version) = try await client.list(
            resource, namespace: configuration.namespace, labelSelector: configuration.labelSelector, fieldSelector: configuration.fieldSelector)
        var fresh: [String: JSONValue] = [:]
        for item in items { fresh[Self.key(of: item)] = item }
        let changes = state.withLock { state -> [Event] in
            var changes: [Event] = []
            for (key, object) in fresh {
                if let old = state.objects[key] {
                    if old != object { changes.append(.updated(old: old, new: object)) }
                } else {
                    changes.append(.added(object))
                }
            }
            for (key, old) in state.objects where fresh[key] == nil { changes.append(.deleted(old)) }
            state.objects = fresh
            state.synced = true
            state.counters.lists += 1
            return changes
        }
        for change in changes { sink.yield(change) }
        return version
    }

    private func apply(_ event: KubeClient.WatchEvent) {
        let key = Self.key(of: event.object)
        let change: Event? = state.withLock { state in
            switch event.type {
            case "ADDED", "MODIFIED":
                let old = state.objects.updateValue(event.object, forKey: key)
                return old.map { .updated(old: $0, new: event.object) } ?? .added(event.object)
            case "DELETED":
                return state.objects.removeValue(forKey: key).map { _ in .deleted(event.object) }
            default:
                return nil  // BOOKMARK: only the version moves
            }
        }
        if let change { sink.yield(change) }
    }

    private static func key(of object: JSONValue) -> String {
        "\(object[path: ["metadata", "namespace"]]?.stringValue ?? "")/\(object[path: ["metadata", "name"]]?.stringValue ?? "")"
    }
}
