import Foundation
import KubeModel
import Synchronization

/// Kubelet's events for the pods Edged runs (`Pulling`, `Pulled`, `Created`, `Started`,
/// `Killing`, `BackOff`, `Unhealthy`, `Failed`), recorded as kubelet's event recorder does:
/// - **aggregated**: an event like one already recorded (same object, container, type, reason
///   and message) raises that event's `count` and `lastTimestamp` instead of making another;
/// - **rate-limited**: each pod may start ``burst`` new events, and gains one more every
///   ``refill`` (kubelet's spam filter: 25, then one per 5 minutes); repeats are always counted;
/// - **bounded**: at most ``capacity`` events are remembered (the oldest go first).
/// Edged sends each changed event to the cloud (``drain()``) as a core/v1 Event.
public final class PodEventRecorder: Sendable {
    /// `Normal` or `Warning`.
    public enum EventType: String, Sendable {
        case normal = "Normal", warning = "Warning"
    }

    /// New events one pod may start at once, and how often it gains another.
    public let burst: Double
    public let refill: TimeInterval
    /// Events remembered for aggregation.
    public let capacity: Int
    private let node: String

    private struct Key: Hashable {
        var namespace: String, podName: String, podUID: String, fieldPath: String
        var type: EventType, reason: String, message: String
    }
    private struct Entry {
        var name: String
        var count: Int
        var first: Date
        var last: Date
        var changed: Bool
    }
    private struct State {
        var entries: [Key: Entry] = [:]
        /// Tokens left per pod uid, and when they were counted.
        var buckets: [String: (tokens: Double, at: Date)] = [:]
        /// Pods gone, whose events go after the next drain.
        var forgotten: Set<String> = []
        var dropped = 0
        /// The last name stamp handed out: names stay distinct for events recorded at one instant.
        var lastStamp: UInt64 = 0
    }
    private let state = Mutex(State())

    public init(node: String, burst: Double = 25, refill: TimeInterval = 300, capacity: Int = 4096) {
        self.node = node
        self.burst = burst
        self.refill = refill
        self.capacity = capacity
    }

    /// Records an event about `pod` (and its container `container`, if any).
    public func record(_ pod: Kube.Pod, container: String? = nil, _ type: EventType, reason: String, message: String, now: Date = Date()) {
        let uid = pod.uid ?? ""
        let key = Key(namespace: pod.namespace.isEmpty ? "default" : pod.namespace, podName: pod.name, podUID: uid,
                      fieldPath: container.map { Self.fieldPath(of: $0, in: pod) } ?? "", type: type, reason: reason, message: message)
        state.withLock { state in
            if var entry = state.entries[key] {
                entry.count += 1
                entry.last = now
                entry.changed = true
                state.entries[key] = entry
                return
            }
            var bucket = state.buckets[uid] ?? (burst, now)
            bucket.tokens = min(burst, bucket.tokens + now.timeIntervalSince(bucket.at) / refill)
            bucket.at = now
            guard bucket.tokens >= 1 else {
                state.buckets[uid] = bucket
                state.dropped += 1
                return
            }
            bucket.tokens -= 1
            state.buckets[uid] = bucket
            if state.entries.count >= capacity, let oldest = state.entries.min(by: { $0.value.last < $1.value.last })?.key {
                state.entries[oldest] = nil
            }
            // Kubelet's name: the object's name and the first occurrence's time in hex nanoseconds.
            state.lastStamp = max(state.lastStamp + 1, UInt64(max(0, now.timeIntervalSince1970) * 1e9))
            let name = pod.name + "." + String(state.lastStamp, radix: 16)
            state.entries[key] = Entry(name: name, count: 1, first: now, last: now, changed: true)
        }
    }

    /// The events recorded or counted again since the last drain, as core/v1 Events.
    public func drain() -> [JSONValue] {
        state.withLock { state in
            var events: [JSONValue] = []
            for (key, entry) in state.entries where entry.changed {
                state.entries[key]?.changed = false
                events.append(event(key, entry))
            }
            if !state.forgotten.isEmpty {
                let gone = state.forgotten
                state.entries = state.entries.filter { !gone.contains($0.key.podUID) }
                for uid in gone { state.buckets[uid] = nil }
                state.forgotten = []
            }
            return events
        }
    }

    /// Forgets a pod that is gone once its last events are drained (they stay in the cloud).
    public func forget(podUID: String) {
        _ = state.withLock { $0.forgotten.insert(podUID) }
    }

    /// New events refused by the rate limit.
    public var dropped: Int { state.withLock { $0.dropped } }

    private func event(_ key: Key, _ entry: Entry) -> JSONValue {
        var involved = JSONObject([
            ("kind", .string("Pod")), ("namespace", .string(key.namespace)), ("name", .string(key.podName)), ("uid", .string(key.podUID)),
            ("apiVersion", .string("v1")),
        ])
        if !key.fieldPath.isEmpty { involved["fieldPath"] = .string(key.fieldPath) }
        return .object(JSONObject([
            ("apiVersion", .string("v1")), ("kind", .string("Event")),
            ("metadata", .object(JSONObject([("name", .string(entry.name)), ("namespace", .string(key.namespace))]))),
            ("involvedObject", .object(involved)),
            ("reason", .string(key.reason)), ("message", .string(key.message)), ("type", .string(key.type.rawValue)),
            ("source", .object(JSONObject([("component", .string("kubelet")), ("host", .string(node))]))),
            ("firstTimestamp", .string(entry.first.formatted(.iso8601))), ("lastTimestamp", .string(entry.last.formatted(.iso8601))),
            ("count", .integer(entry.count)), ("reportingComponent", .string("kubelet")), ("reportingInstance", .string(node)),
        ]))
    }

    /// Kubelet's field path of a container: `spec.containers{name}` (or `spec.initContainers{name}`).
    static func fieldPath(of container: String, in pod: Kube.Pod) -> String {
        let isInit = pod.initContainers.contains { $0.name == container }
        return "spec.\(isInit ? "initContainers" : "containers"){\(container)}"
    }
}
