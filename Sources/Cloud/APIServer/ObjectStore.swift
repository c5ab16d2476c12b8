import Foundation
import KubeModel
import Synchronization
import Transport

/// Where an object lives: its resource (`pods`, or `devices.devices.kubeedge.io` for a group),
/// namespace (empty for cluster-scoped objects) and name.
public struct ObjectKey: Hashable, Sendable, CustomStringConvertible {
    public var resource: String
    public var namespace: String
    public var name: String

    public init(resource: String, namespace: String, name: String) {
        self.resource = resource
        self.namespace = namespace
        self.name = name
    }

    var storageKey: String { "\(resource)/\(namespace)/\(name)" }
    public var description: String { namespace.isEmpty ? "\(resource)/\(name)" : "\(resource)/\(namespace)/\(name)" }
}

/// A change, as watchers see it: the object after it (for a delete, its last state with the
/// delete's revision as resourceVersion).
public struct ObjectEvent: Sendable, Equatable {
    public enum Kind: String, Sendable {
        case added = "ADDED", modified = "MODIFIED", deleted = "DELETED"
        /// No change: every change up to `revision` has been delivered to this watcher.
        case bookmark = "BOOKMARK"
    }

    public var kind: Kind
    public var key: ObjectKey
    public var revision: Int64
    public var object: JSONValue
    /// `object` as the store wrote it (compact JSON), so that every watcher sends these bytes
    /// instead of serialising the object again; empty for a bookmark.
    public var encodedObject: [UInt8]

    public init(kind: Kind, key: ObjectKey, revision: Int64, object: JSONValue, encodedObject: [UInt8]? = nil) {
        self.kind = kind
        self.key = key
        self.revision = revision
        self.object = object
        self.encodedObject = encodedObject ?? (object == .null ? [] : object.serializedBytes)
    }
}

/// The embedded API server's storage, in the manner of etcd (and of k3s's kine on SQL): one
/// SQLite file (WAL), one monotonic revision across all objects, each object's
/// `metadata.resourceVersion` the revision of its last change, a bounded history of changes from
/// which watches resume, and compaction (a watch from before it is `410 Expired`).
/// Optimistic concurrency: an update or delete that names a resourceVersion other than the
/// stored one is a `409 Conflict`. Thread-safe.
public final class ObjectStore: Sendable {
    public struct Configuration: Sendable {
        public var path: String
        /// Changes kept for watchers after compaction. Default 100,000.
        public var historyLimit: Int
        /// Events buffered per watcher before a slow watcher is cut off (it lists again). Default 10,000.
        public var watcherBuffer: Int

        public init(path: String, historyLimit: Int = 100_000, watcherBuffer: Int = 10_000) {
            self.path = path
            self.historyLimit = historyLimit
            self.watcherBuffer = watcherBuffer
        }
    }

    public let configuration: Configuration
    private let storage: Mutex<Storage>

    private struct Storage {
        var db: SQLiteConnection
        var revision: Int64
        var compacted: Int64
        var watchers: [Int: Watcher] = [:]
        var nextWatcher = 0
    }

    private struct Watcher {
        var resource: String
        var namespace: String?
        var continuation: AsyncStream<ObjectEvent>.Continuation
    }

    public init(configuration: Configuration) throws(APIError) {
        self.configuration = configuration
        do {
            let db = try SQLiteConnection(path: configuration.path)
            try db.useWriteAheadLog()
            try db.execute("""
                CREATE TABLE IF NOT EXISTS objects (
                    key TEXT PRIMARY KEY, resource TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL,
                    value BLOB NOT NULL, create_revision INTEGER NOT NULL, mod_revision INTEGER NOT NULL);
                CREATE INDEX IF NOT EXISTS objects_by_resource ON objects(resource, namespace, name);
                CREATE TABLE IF NOT EXISTS events (
                    revision INTEGER PRIMARY KEY, kind TEXT NOT NULL, resource TEXT NOT NULL, namespace TEXT NOT NULL,
                    name TEXT NOT NULL, value BLOB NOT NULL);
                CREATE TABLE IF NOT EXISTS store_state (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
                INSERT OR IGNORE INTO store_state(name, value) VALUES ('revision', 0), ('compacted', 0);
                """)
            try Self.addNodeIndex(db)
            let (revision, compacted) = try Self.readState(db)
            storage = Mutex(Storage(db: db, revision: revision, compacted: compacted))
        } catch {
            throw APIError.internalError("cannot open the object store \(configuration.path): \(error)")
        }
    }

    /// `spec.nodeName` of each object in a column of its own, indexed: an edge node's pods and
    /// devices are listed without reading every object (added to stores created before it).
    private static func addNodeIndex(_ db: SQLiteConnection) throws(SQLiteError) {
        let columns = try db.statement("SELECT 1 FROM pragma_table_info('objects') WHERE name = 'node'")
        let present = try columns.step()
        columns.reset()
        if !present {
            try db.execute("""
                ALTER TABLE objects ADD COLUMN node TEXT NOT NULL DEFAULT '';
                UPDATE objects SET node = coalesce(json_extract(value, '$.spec.nodeName'), '');
                """)
        }
        try db.execute("CREATE INDEX IF NOT EXISTS objects_by_node ON objects(resource, node)")
    }

    private static func readState(_ db: SQLiteConnection) throws(SQLiteError) -> (Int64, Int64) {
        let read = try db.statement("SELECT name, value FROM store_state")
        defer { read.reset() }
        var revision: Int64 = 0
        var compacted: Int64 = 0
        while try read.step() {
            if read.string(at: 0) == "revision" { revision = read.int64(at: 1) } else { compacted = read.int64(at: 1) }
        }
        return (revision, compacted)
    }

    /// The newest revision.
    public var revision: Int64 { storage.withLock { $0.revision } }

    /// The oldest revision a watch can resume after.
    public var compactedRevision: Int64 { storage.withLock { $0.compacted } }

    // MARK: reading

    /// The stored object, or `nil`.
    public func get(_ key: ObjectKey) throws(APIError) -> JSONValue? {
        try Self.sqlite { () throws(SQLiteError) in try storage.withLock { storage throws(SQLiteError) in try Self.read(key, db: storage.db) } }
    }

    /// The objects of `resource` (in `namespace`, or everywhere when `nil`) ordered by namespace
    /// and name, and the revision the list is current at.
    public func list(resource: String, namespace: String? = nil) throws(APIError) -> (objects: [JSONValue], revision: Int64) {
        let (encoded, revision) = try listEncoded(resource: resource, namespace: namespace)
        return (encoded.compactMap { try? JSONValue(parsing: $0) }, revision)
    }

    /// ``list(resource:namespace:)`` as the stored JSON of each object, unparsed (a list that
    /// selects nothing out is sent as it is stored). The lock is held only to read.
    /// With `nodeName`, only objects whose `spec.nodeName` is that (through an index).
    public func listEncoded(resource: String, namespace: String? = nil, nodeName: String? = nil) throws(APIError) -> (objects: [[UInt8]], revision: Int64) {
        try Self.sqlite { () throws(SQLiteError) in try storage.withLock { storage throws(SQLiteError) in
            var sql = "SELECT value FROM objects WHERE resource = ?1"
            if namespace != nil { sql += " AND namespace = ?2" }
            if nodeName != nil { sql += " AND node = ?3" }
            let read = try storage.db.statement(sql + " ORDER BY namespace, name")
            defer { read.reset() }
            read.bind(resource, at: 1)
            if let namespace { read.bind(namespace, at: 2) }
            if let nodeName { read.bind(nodeName, at: 3) }
            var objects: [[UInt8]] = []
            while try read.step() { objects.append(Array(read.blobBytes(at: 0))) }
            return (objects, storage.revision)
        } }
    }

    // MARK: writing

    /// Stores a new object: sets `metadata.resourceVersion`, and `uid`, `creationTimestamp` and
    /// `generation` when absent. `409 AlreadyExists` if the key is taken.
    public func create(_ key: ObjectKey, _ object: JSONValue, dryRun: Bool = false) throws(APIError) -> JSONValue {
        try write(key, dryRun: dryRun) { storage, revision throws(APIError) -> (JSONValue, ObjectEvent.Kind) in
            if try Self.sqlite({ () throws(SQLiteError) in try Self.exists(key, db: storage.db) }) {
                throw APIError.alreadyExists(key.resource, key.name)
            }
            var stored = object
            if stored[path: ["metadata", "uid"]]?.stringValue?.isEmpty ?? true { stored.set(.string(UUID().uuidString.lowercased()), at: ["metadata", "uid"]) }
            if stored[path: ["metadata", "creationTimestamp"]]?.stringValue == nil { stored.set(.string(Self.now()), at: ["metadata", "creationTimestamp"]) }
            if stored[path: ["metadata", "generation"]] == nil { stored.set(.integer(1), at: ["metadata", "generation"]) }
            stored.set(.string(String(revision)), at: ["metadata", "resourceVersion"])
            return (stored, .added)
        }
    }

    /// Replaces a stored object. When `object` names a `metadata.resourceVersion`, it must be the
    /// stored one (`409 Conflict` otherwise). `uid` and `creationTimestamp` are kept; `generation`
    /// goes up when anything but `metadata` and `status` changed.
    public func update(_ key: ObjectKey, _ object: JSONValue, dryRun: Bool = false) throws(APIError) -> JSONValue {
        try write(key, dryRun: dryRun) { storage, revision throws(APIError) -> (JSONValue, ObjectEvent.Kind) in
            guard let current = try Self.sqlite({ () throws(SQLiteError) in try Self.read(key, db: storage.db) }) else {
                throw APIError.notFound(key.resource, key.name)
            }
            try Self.checkPrecondition(object, against: current, key: key)
            var stored = object
            for field in ["uid", "creationTimestamp"] { stored.set(current[path: ["metadata", field]], at: ["metadata", field]) }
            let generation = current[path: ["metadata", "generation"]]?.int64Value ?? 1
            stored.set(.integer(Self.specChanged(current, stored) ? generation + 1 : generation), at: ["metadata", "generation"])
            stored.set(.string(String(revision)), at: ["metadata", "resourceVersion"])
            return (stored, .modified)
        }
    }

    /// Removes an object; `resourceVersion`, when given, must be the stored one. Returns the
    /// object as it was, with the delete's revision as its resourceVersion.
    public func delete(_ key: ObjectKey, resourceVersion: String? = nil, dryRun: Bool = false) throws(APIError) -> JSONValue {
        try write(key, dryRun: dryRun) { storage, revision throws(APIError) -> (JSONValue, ObjectEvent.Kind) in
            guard var current = try Self.sqlite({ () throws(SQLiteError) in try Self.read(key, db: storage.db) }) else {
                throw APIError.notFound(key.resource, key.name)
            }
            if let resourceVersion, !resourceVersion.isEmpty, current[path: ["metadata", "resourceVersion"]]?.stringValue != resourceVersion {
                throw APIError.conflict(key.resource, key.name)
            }
            current.set(.string(String(revision)), at: ["metadata", "resourceVersion"])
            return (current, .deleted)
        }
    }

    /// Runs one write at the next revision: `change` returns the object to store (or the
    /// deleted one) and the kind of change; the row, the event and the revision commit together.
    /// A dry run checks and returns what would be stored, and stores nothing.
    private func write(_ key: ObjectKey, dryRun: Bool,
                       _ change: (Storage, Int64) throws(APIError) -> (JSONValue, ObjectEvent.Kind)) throws(APIError) -> JSONValue {
        var slow: [AsyncStream<ObjectEvent>.Continuation] = []
        defer { for watcher in slow { watcher.finish() } }
        return try storage.withLock { storage throws(APIError) -> JSONValue in
            let revision = storage.revision + 1
            var (object, kind) = try change(storage, revision)
            if dryRun {
                // Nothing gets this revision; report the object at the version it has now.
                let stored = kind == .added ? nil : try Self.sqlite { () throws(SQLiteError) in try Self.read(key, db: storage.db) }
                object.set(stored?[path: ["metadata", "resourceVersion"]], at: ["metadata", "resourceVersion"])
                return object
            }
            let bytes = object.serializedBytes
            try Self.sqlite { () throws(SQLiteError) in
                try storage.db.transaction { () throws(SQLiteError) in
                    if kind == .deleted {
                        let remove = try storage.db.statement("DELETE FROM objects WHERE key = ?")
                        remove.bind(key.storageKey, at: 1)
                        try remove.run()
                    } else {
                        let upsert = try storage.db.statement("""
                            INSERT INTO objects(key, resource, namespace, name, value, create_revision, mod_revision, node) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                            ON CONFLICT(key) DO UPDATE SET value = excluded.value, mod_revision = excluded.mod_revision, node = excluded.node
                            """)
                        upsert.bind(key.storageKey, at: 1)
                        upsert.bind(key.resource, at: 2)
                        upsert.bind(key.namespace, at: 3)
                        upsert.bind(key.name, at: 4)
                        upsert.bind(bytes: bytes, at: 5)
                        upsert.bind(revision, at: 6)
                        upsert.bind(revision, at: 7)
                        upsert.bind(object[path: ["spec", "nodeName"]]?.stringValue ?? "", at: 8)
                        try upsert.run()
                    }
                    let event = try storage.db.statement("INSERT INTO events(revision, kind, resource, namespace, name, value) VALUES (?, ?, ?, ?, ?, ?)")
                    event.bind(revision, at: 1)
                    event.bind(kind.rawValue, at: 2)
                    event.bind(key.resource, at: 3)
                    event.bind(key.namespace, at: 4)
                    event.bind(key.name, at: 5)
                    event.bind(bytes: bytes, at: 6)
                    try event.run()
                    let save = try storage.db.statement("UPDATE store_state SET value = ? WHERE name = 'revision'")
                    save.bind(revision, at: 1)
                    try save.run()
                }
            }
            storage.revision = revision
            let event = ObjectEvent(kind: kind, key: key, revision: revision, object: object, encodedObject: bytes)
            for (id, watcher) in storage.watchers where Self.matches(key, resource: watcher.resource, namespace: watcher.namespace) {
                if case .dropped = watcher.continuation.yield(event) {
                    slow.append(watcher.continuation)
                    storage.watchers.removeValue(forKey: id)
                }
            }
            return object
        }
    }

    // MARK: watching

    /// Changes to `resource` (in `namespace`, when given) after `revision`, then live ones.
    /// `410 Expired` when compaction removed changes after `revision`. The stream ends when the
    /// watcher falls ``Configuration/watcherBuffer`` events behind.
    public func watch(resource: String, namespace: String? = nil, after revision: Int64) throws(APIError) -> AsyncStream<ObjectEvent> {
        let (stream, continuation) = AsyncStream<ObjectEvent>.makeStream(bufferingPolicy: .bufferingOldest(configuration.watcherBuffer))
        let id = try storage.withLock { storage throws(APIError) -> Int in
            guard revision >= storage.compacted else {
                throw APIError.expired("too old resource version: \(revision) (\(storage.compacted))")
            }
            let backlog = try Self.sqlite { () throws(SQLiteError) in try Self.events(after: revision, resource: resource, namespace: namespace, db: storage.db) }
            for event in backlog {
                if case .dropped = continuation.yield(event) {
                    continuation.finish()
                    return -1
                }
            }
            let id = storage.nextWatcher
            storage.nextWatcher += 1
            storage.watchers[id] = Watcher(resource: resource, namespace: namespace, continuation: continuation)
            return id
        }
        continuation.onTermination = { [weak self] _ in
            _ = self?.storage.withLock { $0.watchers.removeValue(forKey: id) }
        }
        return stream
    }

    /// Watchers registered now.
    public var watcherCount: Int { storage.withLock { $0.watchers.count } }

    /// Tells every watcher, in order with its changes, that it has everything up to the current
    /// revision (a bookmark), so that it can resume from there rather than from an older
    /// revision compaction may have removed.
    public func sendBookmarks() {
        storage.withLock { storage in
            for watcher in storage.watchers.values {
                let key = ObjectKey(resource: watcher.resource, namespace: watcher.namespace ?? "", name: "")
                _ = watcher.continuation.yield(ObjectEvent(kind: .bookmark, key: key, revision: storage.revision, object: .null, encodedObject: []))
            }
        }
    }

    /// Drops history older than the newest ``Configuration/historyLimit`` changes; watches from
    /// before that are `410 Expired` from then on.
    public func compact() throws(APIError) {
        let historyLimit = Int64(configuration.historyLimit)
        try Self.sqlite { () throws(SQLiteError) in try storage.withLock { storage throws(SQLiteError) in
            let through = storage.revision - historyLimit
            guard through > storage.compacted else { return }
            try storage.db.transaction { () throws(SQLiteError) in
                let remove = try storage.db.statement("DELETE FROM events WHERE revision <= ?")
                remove.bind(through, at: 1)
                try remove.run()
                let save = try storage.db.statement("UPDATE store_state SET value = ? WHERE name = 'compacted'")
                save.bind(through, at: 1)
                try save.run()
            }
            storage.compacted = through
        } }
    }

    // MARK: helpers

    private static func events(after revision: Int64, resource: String, namespace: String?, db: SQLiteConnection) throws(SQLiteError) -> [ObjectEvent] {
        let read = try db.statement(namespace == nil
            ? "SELECT revision, kind, namespace, name, value FROM events WHERE revision > ? AND resource = ? ORDER BY revision"
            : "SELECT revision, kind, namespace, name, value FROM events WHERE revision > ? AND resource = ? AND namespace = ? ORDER BY revision")
        read.bind(revision, at: 1)
        read.bind(resource, at: 2)
        if let namespace { read.bind(namespace, at: 3) }
        var events: [ObjectEvent] = []
        while try read.step() {
            let encoded = Array(read.blobBytes(at: 4))
            guard let object = try? JSONValue(parsing: encoded) else { continue }
            events.append(ObjectEvent(
                kind: ObjectEvent.Kind(rawValue: read.string(at: 1) ?? "") ?? .modified,
                key: ObjectKey(resource: resource, namespace: read.string(at: 2) ?? "", name: read.string(at: 3) ?? ""),
                revision: read.int64(at: 0), object: object, encodedObject: encoded))
        }
        return events
    }

    private static func read(_ key: ObjectKey, db: SQLiteConnection) throws(SQLiteError) -> JSONValue? {
        let read = try db.statement("SELECT value FROM objects WHERE key = ?")
        defer { read.reset() }
        read.bind(key.storageKey, at: 1)
        guard try read.step() else { return nil }
        return try? JSONValue(parsing: read.blobBytes(at: 0))
    }

    private static func exists(_ key: ObjectKey, db: SQLiteConnection) throws(SQLiteError) -> Bool {
        let read = try db.statement("SELECT 1 FROM objects WHERE key = ?")
        defer { read.reset() }
        read.bind(key.storageKey, at: 1)
        return try read.step()
    }

    private static func matches(_ key: ObjectKey, resource: String, namespace: String?) -> Bool {
        key.resource == resource && (namespace == nil || key.namespace == namespace)
    }

    private static func checkPrecondition(_ object: JSONValue, against current: JSONValue, key: ObjectKey) throws(APIError) {
        guard let wanted = object[path: ["metadata", "resourceVersion"]]?.stringValue, !wanted.isEmpty else { return }
        guard wanted == current[path: ["metadata", "resourceVersion"]]?.stringValue else { throw APIError.conflict(key.resource, key.name) }
    }

    /// Whether anything outside `metadata` and `status` differs.
    private static func specChanged(_ old: JSONValue, _ new: JSONValue) -> Bool {
        var a = old
        var b = new
        for field in ["metadata", "status"] {
            a[field] = nil
            b[field] = nil
        }
        return a != b
    }

    private static func sqlite<T>(_ body: () throws(SQLiteError) -> T) throws(APIError) -> T {
        do {
            return try body()
        } catch {
            throw APIError.internalError("storage: \(error)")
        }
    }

    /// Now, as Kubernetes writes times (`2026-01-02T03:04:05Z`).
    static func now() -> String { Date().formatted(.iso8601) }
}
