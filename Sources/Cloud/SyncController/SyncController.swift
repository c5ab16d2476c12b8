import CloudHub
import Foundation
import KubeModel
import Logging
import Synchronization
import Transport

/// KubeEdge's SyncController: a durable record, per node and object, of what the node was
/// sent, as `reliablesyncs.kubeedge.io/v1alpha1` ObjectSync objects named `{node}.{objectUID}`
/// in the object's namespace. EdgeController loads the records when it starts, so that after a
/// cloudcore restart it resends only objects that changed and sends deletes for objects that
/// went away meanwhile, including while cloudcore itself was down.
///
/// A record is written once CloudHub has taken the message into the node's persistent outbox
/// (which delivers it however often the node or cloudcore restart), and removed once a delete
/// has been taken the same way. `status.objectResourceVersion` is the version sent; the
/// annotation ``fingerprintAnnotation`` says which content it was (status and metadata
/// bookkeeping aside, see ``EdgeController``).
public final class SyncController: Sendable {
    /// One node's record of one object.
    public struct Record: Sendable, Equatable {
        public var uid: String
        public var fingerprint: String
    }

    /// What the controller counted.
    public struct Counters: Sendable, Equatable {
        public var recordsWritten = 0
        public var recordsDeleted = 0
        public var failures = 0
    }

    public static let nodeLabel = "reliablesyncs.kubeedge.io/node"
    public static let fingerprintAnnotation = "reliablesyncs.kubeedge.io/fingerprint"
    /// ObjectSync, as the one resource table (``APIResource/standard``) has it.
    public static let resource = APIResource.standard.first { $0.storageName == "objectsyncs.reliablesyncs.kubeedge.io" }!

    private let client: KubeClient
    private let logger: Logger
    /// API calls in flight at once while recording a batch.
    private let concurrency: Int
    private let counters = Mutex(Counters())

    public init(client: KubeClient, concurrency: Int = 8, logger: Logger = Logger(label: "synccontroller")) {
        self.client = client
        self.concurrency = max(1, concurrency)
        self.logger = logger
    }

    public var statistics: Counters { counters.withLock { $0 } }

    /// Every node's records: node → object → record.
    public func load() async throws -> [String: [EdgeObjectKey: Record]] {
        let (items, _) = try await client.list(Self.resource)
        var records: [String: [EdgeObjectKey: Record]] = [:]
        for item in items {
            guard let node = item[path: ["metadata", "labels", Self.nodeLabel]]?.stringValue,
                  let name = item[path: ["metadata", "name"]]?.stringValue, name.hasPrefix(node + "."),
                  let namespace = item[path: ["metadata", "namespace"]]?.stringValue,
                  let kind = item[path: ["spec", "objectKind"]]?.stringValue, let objectName = item[path: ["spec", "objectName"]]?.stringValue
            else { continue }
            let uid = String(name.dropFirst(node.count + 1))
            let fingerprint = item[path: ["metadata", "annotations", Self.fingerprintAnnotation]]?.stringValue ?? ""
            records[node, default: [:]][EdgeObjectKey(kind: kind.lowercased(), namespace: namespace, name: objectName)] = Record(uid: uid, fingerprint: fingerprint)
        }
        return records
    }

    /// One change to record: `object` (with this fingerprint) sent to `node`, replacing
    /// `previous`; or, with no object, `previous` deleted at the node.
    public struct Change: Sendable {
        public var node: String
        public var key: EdgeObjectKey
        public var object: JSONValue?
        public var fingerprint: String
        public var previous: Record?

        public init(node: String, key: EdgeObjectKey, object: JSONValue?, fingerprint: String, previous: Record?) {
            self.node = node
            self.key = key
            self.object = object
            self.fingerprint = fingerprint
            self.previous = previous
        }
    }

    /// Records `changes`, several at once; the changes that could not be recorded (to try again).
    public func record(_ changes: [Change]) async -> [Change] {
        await withTaskGroup(of: Change?.self) { group in
            var failed: [Change] = []
            var pending = changes.makeIterator()
            func add(_ change: Change) {
                group.addTask { [self] in await record(change) ? nil : change }
            }
            for _ in 0..<concurrency { if let change = pending.next() { add(change) } }
            while let result = await group.next() {
                if let result { failed.append(result) }
                if let change = pending.next() { add(change) }
            }
            return failed
        }
    }

    private func record(_ change: Change) async -> Bool {
        do {
            let uid = change.object?[path: ["metadata", "uid"]]?.stringValue
            if let previous = change.previous, previous.uid != uid {
                try await deleteRecord(node: change.node, namespace: change.key.namespace, uid: previous.uid)
            }
            guard let object = change.object, let uid else { return true }
            let name = "\(change.node).\(uid)"
            let version = object[path: ["metadata", "resourceVersion"]] ?? .string("")
            // The record may exist already (an earlier send of this object) or not (its first
            // send, or an earlier write that failed): annotate it, or create it.
            var exists = change.previous?.uid == uid
            if exists {
                do {
                    try await annotate(name, namespace: change.key.namespace, fingerprint: change.fingerprint)
                } catch let error as APIError where error.code == 404 {
                    exists = false
                }
            }
            if !exists {
                let record = JSONValue.object(JSONObject([
                    ("apiVersion", .string("reliablesyncs.kubeedge.io/v1alpha1")), ("kind", .string("ObjectSync")),
                    ("metadata", .object(JSONObject([
                        ("name", .string(name)), ("namespace", .string(change.key.namespace)),
                        ("labels", .object(JSONObject([(Self.nodeLabel, .string(change.node))]))),
                        ("annotations", .object(JSONObject([(Self.fingerprintAnnotation, .string(change.fingerprint))]))),
                    ]))),
                    ("spec", .object(JSONObject([
                        ("objectAPIVersion", object["apiVersion"] ?? .string("v1")), ("objectKind", object["kind"] ?? .string("")),
                        ("objectName", .string(change.key.name)),
                    ]))),
                ]))
                do {
                    _ = try await client.create(Self.resource, namespace: change.key.namespace, record)
                } catch let error as APIError where error.code == 409 {
                    try await annotate(name, namespace: change.key.namespace, fingerprint: change.fingerprint)
                }
            }
            _ = try await client.patch(Self.resource, namespace: change.key.namespace, name: name,
                                       .object(JSONObject([("status", .object(JSONObject([("objectResourceVersion", version)])))])), status: true)
            counters.withLock { $0.recordsWritten += 1 }
            return true
        } catch {
            counters.withLock { $0.failures += 1 }
            logger.warning("cannot record what a node was sent", metadata: ["node": "\(change.node)", "object": "\(change.key)", "error": "\(error)"])
            return false
        }
    }

    private func annotate(_ name: String, namespace: String, fingerprint: String) async throws {
        _ = try await client.patch(Self.resource, namespace: namespace, name: name, .object(JSONObject([
            ("metadata", .object(JSONObject([("annotations", .object(JSONObject([(Self.fingerprintAnnotation, .string(fingerprint))])))]))),
        ])))
    }

    private func deleteRecord(node: String, namespace: String, uid: String) async throws {
        do {
            try await client.delete(Self.resource, namespace: namespace, name: "\(node).\(uid)")
            counters.withLock { $0.recordsDeleted += 1 }
        } catch let error as APIError where error.code == 404 {
            // Already gone.
        }
    }
}
