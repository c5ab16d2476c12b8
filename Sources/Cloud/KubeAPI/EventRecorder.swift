import Foundation
import KubeModel
import Synchronization

/// Writes core/v1 Events for a controller, as client-go's event recorder does: an event like
/// one it wrote before (same object, type, reason and message) raises that Event's `count` and
/// `lastTimestamp` with a patch instead of creating another; at most ``capacity`` are remembered.
/// It also writes Events reported by others (an edge's kubelet) with ``write(_:)``.
public final class EventRecorder: Sendable {
    /// The component named in `source` and `reportingComponent` (`node-controller`, `edgecontroller`…).
    public let component: String
    public let capacity: Int
    private let client: KubeClient

    private struct Key: Hashable {
        var namespace: String, kind: String, name: String, uid: String, type: String, reason: String, message: String
    }
    private let written = Mutex<(events: [Key: (name: String, count: Int64, first: String)], lastStamp: UInt64)>(([:], 0))

    public init(client: KubeClient, component: String, capacity: Int = 4096) {
        self.client = client
        self.component = component
        self.capacity = capacity
    }

    static let events = APIResource(Kube.Event.self)

    /// Records an event about the object `involved` (a reference: kind, name, namespace, uid).
    /// Events about cluster-scoped objects go to `default`, as Kubernetes puts them.
    public func record(_ involved: JSONValue, type: String, reason: String, message: String, now: Date = Date()) async throws {
        let namespace = involved["namespace"]?.stringValue.flatMap { $0.isEmpty ? nil : $0 } ?? "default"
        let key = Key(namespace: namespace, kind: involved["kind"]?.stringValue ?? "", name: involved["name"]?.stringValue ?? "",
                      uid: involved["uid"]?.stringValue ?? "", type: type, reason: reason, message: message)
        let time = now.formatted(.iso8601)
        let (name, count, first) = written.withLock { written -> (String, Int64, String) in
            if let seen = written.events[key] {
                written.events[key] = (seen.name, seen.count + 1, seen.first)
                return (seen.name, seen.count + 1, seen.first)
            }
            if written.events.count >= capacity { written.events.removeAll() }
            // The object's name and the time in hex nanoseconds, distinct within one instant.
            written.lastStamp = max(written.lastStamp + 1, UInt64(max(0, now.timeIntervalSince1970) * 1e9))
            let name = key.name + "." + String(written.lastStamp, radix: 16)
            written.events[key] = (name, 1, time)
            return (name, 1, time)
        }
        try await write(.object(JSONObject([
            ("apiVersion", .string("v1")), ("kind", .string("Event")),
            ("metadata", .object(JSONObject([("name", .string(name)), ("namespace", .string(namespace))]))),
            ("involvedObject", involved), ("reason", .string(reason)), ("message", .string(message)), ("type", .string(type)),
            ("source", .object(JSONObject([("component", .string(component))]))),
            ("firstTimestamp", .string(first)), ("lastTimestamp", .string(time)), ("count", .integer(count)),
            ("reportingComponent", .string(component)), ("reportingInstance", .string(component)),
        ])))
    }

    /// Creates the Event, or when it exists raises its count, last time and message to the
    /// given ones (a repeat of an aggregated event).
    public func write(_ event: JSONValue) async throws {
        let namespace = event[path: ["metadata", "namespace"]]?.stringValue ?? "default"
        do {
            _ = try await client.create(Self.events, namespace: namespace, event)
        } catch let error as APIError where error.code == 409 {
            var changes = JSONObject()
            for field in ["count", "lastTimestamp", "message"] { if let value = event[field] { changes[field] = value } }
            _ = try await client.patch(Self.events, namespace: namespace, name: event[path: ["metadata", "name"]]?.stringValue ?? "", .object(changes))
        }
    }
}
