import Foundation
import KubeModel
import Synchronization
import Storage
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
/// stored one is a `409 Conflict`.
///
/// Every statement runs on the file's ``Database`` threads: writes that arrive together commit
/// in one transaction, reads use a connection of their own. Watchers are served by a
/// ``WatchHub``: recent changes from memory, older ones from the `events` table.
public final class ObjectStore: Sendable {
    public struct Configuration: Sendable {
        public var path: String
        /// Changes kept for watchers after compaction. Default 100,000.
        public var historyLimit: Int
        /// Events buffered per watcher before a slow watcher is cut off (it lists again). Default 10,000.
        public var watcherBuffer: Int
        /// The newest changes also kept in memory, so that most watches resume without reading
        /// the file. Default 1,000.
        public var memoryHistory: Int

        public init(path: String, historyLimit: Int = 100_000, watcherBuffer: Int = 10_000, memoryHistory: Int = 1_000) {
            self.path = path
            self.historyLimit = historyLimit
            self.watcherBuffer = watcherBuffer
            self.memoryHistory = memoryHistory
        }
    }

    /// Whose changes a watcher wants: one resource, in one namespace or all.
    struct WatchScope: Sendable {
        var resource: String
        var namespace: String?
    }

    public let configuration: Configuration
    private let database: Database
    private let hub: WatchHub<ObjectEvent, WatchScope>

    public init(configuration: Configuration) throws(APIError) {
        self.configuration = configuration
        let opened = Mutex<(revision: Int64, compacted: Int64)>((0, 0))
        do {
            database = try Database(configuration: DatabaseConfiguration(path: configuration.path)) { (db) throws in
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
                let state = try Self.readState(db)
                opened.withLock { $0 = state }
            }
        } catch {
            throw APIError.internalError("cannot open the object store \(configuration.path): \(error)")
        }
        let (revision, compacted) = opened.withLock { $0 }
        let database = database
        hub = WatchHub(
            revision: revision, compacted: compacted,
            configuration: WatchHubConfiguration(memoryHistory: configuration.memoryHistory, watcherBuffer: configuration.watcherBuffer),
            matches: { event, scope in Self.matches(event.key, resource: scope.resource, namespace: scope.namespace) },
            history: { after, through, scope in
                try await database.read { (db) throws in
                    try Self.events(after: after, through: through, resource: scope.resource, namespace: scope.namespace, db: db)
                }
            })
    }

    /// Lets queued writes finish and closes the file.
    public func close() async {
        await database.close()
    }

    /// `spec.nodeName` of each object in a column of its own, indexed: an edge node's pods and
    /// devices are listed without reading every object (added to stores created before it).
    private static func addNodeIndex(_ db: DatabaseConnection) throws(SQLiteError) {
        let present = try db.integer("SELECT 1 FROM pragma_table_info('objects') WHERE name = 'node'") != nil
        if !present {
            try db.execute("""
                ALTER TABLE objects ADD COLUMN node TEXT NOT NULL DEFAULT '';
                UPDATE objects SET node = coalesce(json_extract(value, '$.spec.nodeName'), '');
                """)
        }
        try db.execute("CREATE INDEX IF NOT EXISTS objects_by_node ON objects(resource, node)")
    }

    private static func readState(_ db: DatabaseConnection) throws(SQLiteError) -> (revision: Int64, compacted: Int64) {
        (try db.integer("SELECT value FROM store_state WHERE name = 'revision'") ?? 0,
         try db.integer("SELECT value FROM store_state WHERE name = 'compacted'") ?? 0)
    }

    /// The newest revision watchers have been told of.
    public var revision: Int64 { hub.revision }

    /// The oldest revision a watch can resume after.
    public var compactedRevision: Int64 { hub.compactedRevision }

    // MARK: reading

    /// The stored object, or `nil`.
    public func get(_ key: ObjectKey) async throws(APIError) -> JSONValue? {
        try await Self.storage { [database] in
            try await database.read { (db) throws in try Self.read(key, db: db) }
        }
    }

    /// Several objects in one read (one snapshot, one trip to the reader thread), in order.
    public func get(_ keys: [ObjectKey]) async throws(APIError) -> [JSONValue?] {
        try await Self.storage { [database] in
            try await database.read { (db) throws in try keys.map { key throws in try Self.read(key, db: db) } }
        }
    }

    /// The objects of `resource` (in `namespace`, or everywhere when `nil`) ordered by namespace
    /// and name, and the revision the list is current at.
    public func list(resource: String, namespace: String? = nil) async throws(APIError) -> (objects: [JSONValue], revision: Int64) {
        let (encoded, revision) = try await listEncoded(resource: resource, namespace: namespace)
        return (encoded.compactMap { try? JSONValue(parsing: $0) }, revision)
    }

    /// ``list(resource:namespace:)`` as the stored JSON of each object, unparsed (a list that
    /// selects nothing out is sent as it is stored), read in one snapshot with its revision.
    /// With `nodeName`, only objects whose `spec.nodeName` is that (through an index).
    public func listEncoded(resource: String, namespace: String? = nil, nodeName: String? = nil) async throws(APIError) -> (objects: [[UInt8]], revision: Int64) {
        let (objects, revision) = try await listStored(resource: resource, namespace: namespace, nodeName: nodeName)
        return (objects.map(\.value), revision)
    }

    /// The objects whose `metadata.ownerReferences` name the owner with `uid` (what garbage
    /// collection deletes or orphans with it): rows that mention the uid at all, then checked.
    public func dependents(ofUID uid: String) async throws(APIError) -> [(key: ObjectKey, object: JSONValue)] {
        guard !uid.isEmpty else { return [] }
        return try await rows(where: "instr(value, ?1) > 0", binding: uid).filter { _, object in
            object[path: ["metadata", "ownerReferences"]]?.arrayValue?.contains { $0["uid"]?.stringValue == uid } == true
        }
    }

    /// Every object in `namespace`, of every resource.
    public func objects(inNamespace namespace: String) async throws(APIError) -> [(key: ObjectKey, object: JSONValue)] {
        guard !namespace.isEmpty else { return [] }
        return try await rows(where: "namespace = ?1", binding: namespace)
    }

    private func rows(where condition: String, binding value: String) async throws(APIError) -> [(key: ObjectKey, object: JSONValue)] {
        try await Self.storage { [database] in
            try await database.read { (db) throws -> [(key: ObjectKey, object: JSONValue)] in
                let read = try db.statement("SELECT resource, namespace, name, value FROM objects WHERE " + condition + " ORDER BY resource, name")
                defer { read.reset() }
                read.bind(value, at: 1)
                var found: [(key: ObjectKey, object: JSONValue)] = []
                while try read.step() {
                    let key = ObjectKey(resource: read.string(at: 0) ?? "", namespace: read.string(at: 1) ?? "", name: read.string(at: 2) ?? "")
                    if let object = read.withBytes(at: 3, { try? JSONValue(parsing: $0) }) { found.append((key, object)) }
                }
                return found
            }
        }
    }

    /// One stored object: its storage key, the revision that last changed it, and its JSON.
    public struct StoredObject: Sendable {
        public var key: String
        public var modRevision: Int64
        public var value: [UInt8]
    }

    /// ``listEncoded(resource:namespace:nodeName:)`` with each object's key and revision, which
    /// identify an encoding of it made earlier.
    public func listStored(resource: String, namespace: String? = nil, nodeName: String? = nil) async throws(APIError) -> (objects: [StoredObject], revision: Int64) {
        try await Self.storage { [database] in
            try await database.read { (db) throws -> (objects: [StoredObject], revision: Int64) in
                var sql = "SELECT value, key, mod_revision FROM objects WHERE resource = ?1"
                if namespace != nil { sql += " AND namespace = ?2" }
                if nodeName != nil { sql += " AND node = ?3" }
                let read = try db.statement(sql + " ORDER BY namespace, name")
                defer { read.reset() }
                read.bind(resource, at: 1)
                if let namespace { read.bind(namespace, at: 2) }
                if let nodeName { read.bind(nodeName, at: 3) }
                var objects: [StoredObject] = []
                while try read.step() { objects.append(StoredObject(key: read.string(at: 1) ?? "", modRevision: read.int64(at: 2), value: read.bytes(at: 0))) }
                return (objects, try Self.readState(db).revision)
            }
        }
    }

    // MARK: writing

    /// Stores a new object: sets `metadata.resourceVersion`, and `uid`, `creationTimestamp` and
    /// `generation` when absent. `409 AlreadyExists` if the key is taken. With
    /// `requiringNamespace`, that namespace must exist (`404` otherwise), checked in the same
    /// transaction.
    public func create(_ key: ObjectKey, _ object: JSONValue, dryRun: Bool = false, requiringNamespace: Bool = false) async throws(APIError) -> JSONValue {
        try await write(key, dryRun: dryRun) { db, revision throws(APIError) -> (JSONValue, ObjectEvent.Kind) in
            if requiringNamespace, !key.namespace.isEmpty,
               !(try Self.sqlite({ () throws(SQLiteError) in try Self.exists(ObjectKey(resource: "namespaces", namespace: "", name: key.namespace), db: db) })) {
                throw APIError(code: 404, reason: "NotFound", message: "namespaces \"\(key.namespace)\" not found")
            }
            if try Self.sqlite({ () throws(SQLiteError) in try Self.exists(key, db: db) }) {
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
    public func update(_ key: ObjectKey, _ object: JSONValue, dryRun: Bool = false) async throws(APIError) -> JSONValue {
        try await write(key, dryRun: dryRun) { db, revision throws(APIError) -> (JSONValue, ObjectEvent.Kind) in
            guard let current = try Self.sqlite({ () throws(SQLiteError) in try Self.read(key, db: db) }) else {
                throw APIError.notFound(key.resource, key.name)
            }
            try Self.checkPrecondition(object, against: current, key: key)
            var stored = object
            for field in ["uid", "creationTimestamp"] { stored.set(current[path: ["metadata", field]], at: ["metadata", field]) }
            if let deleting = current[path: ["metadata", "deletionTimestamp"]] {
                // Being deleted: the mark stays, no finalizer may be added, and removing the last
                // one completes the delete.
                let before = Set(current[path: ["metadata", "finalizers"]]?.arrayValue?.compactMap(\.stringValue) ?? [])
                let after = stored[path: ["metadata", "finalizers"]]?.arrayValue?.compactMap(\.stringValue) ?? []
                let added = after.filter { !before.contains($0) }
                guard added.isEmpty else {
                    let kind = current["kind"]?.stringValue ?? key.resource
                    let group = (current["apiVersion"]?.stringValue ?? "").split(separator: "/").dropLast().first.map { "." + $0 } ?? ""
                    throw APIError.invalid("\(kind)\(group) \"\(key.name)\" is invalid: metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted, "
                                           + "found new finalizers []string{\(added.map { "\"\($0)\"" }.joined(separator: ", "))}")
                }
                stored.set(deleting, at: ["metadata", "deletionTimestamp"])
                stored.set(current[path: ["metadata", "deletionGracePeriodSeconds"]], at: ["metadata", "deletionGracePeriodSeconds"])
                // A graceful delete (a pod its node is still stopping) waits for the final delete.
                if after.isEmpty, (current[path: ["metadata", "deletionGracePeriodSeconds"]]?.int64Value ?? 0) == 0 {
                    stored.set(.string(String(revision)), at: ["metadata", "resourceVersion"])
                    return (stored, .deleted)
                }
            }
            let generation = current[path: ["metadata", "generation"]]?.int64Value ?? 1
            stored.set(.integer(Self.specChanged(current, stored) ? generation + 1 : generation), at: ["metadata", "generation"])
            stored.set(.string(String(revision)), at: ["metadata", "resourceVersion"])
            return (stored, .modified)
        }
    }

    /// Removes an object; `resourceVersion`, when given, must be the stored one. Returns the
    /// object as it was, with the delete's revision as its resourceVersion.
    ///
    /// With a `gracePeriodSeconds` above 0 (a pod its node must stop first) the object is only
    /// marked: `deletionTimestamp` (now plus the grace period) and `deletionGracePeriodSeconds`,
    /// and a later delete may shorten the period (never lengthen it); the delete with 0 removes it.
    /// Finalizers hold the object in the same way until an update removes the last of them.
    public func delete(_ key: ObjectKey, resourceVersion: String? = nil, gracePeriodSeconds: Int64 = 0,
                       dryRun: Bool = false) async throws(APIError) -> JSONValue {
        try await write(key, dryRun: dryRun) { db, revision throws(APIError) -> (JSONValue, ObjectEvent.Kind) in
            guard var current = try Self.sqlite({ () throws(SQLiteError) in try Self.read(key, db: db) }) else {
                throw APIError.notFound(key.resource, key.name)
            }
            if let resourceVersion, !resourceVersion.isEmpty, current[path: ["metadata", "resourceVersion"]]?.stringValue != resourceVersion {
                throw APIError.conflict(key.resource, key.name)
            }
            current.set(.string(String(revision)), at: ["metadata", "resourceVersion"])
            let grace = max(0, gracePeriodSeconds)
            let marked = current[path: ["metadata", "deletionTimestamp"]] != nil
            let markedGrace = current[path: ["metadata", "deletionGracePeriodSeconds"]]?.int64Value ?? 0
            let held = current[path: ["metadata", "finalizers"]]?.arrayValue?.isEmpty == false
            if grace > 0 || held {
                // Marked, or marked sooner: the shorter grace period wins.
                if !marked || grace < markedGrace {
                    current.set(.string(Self.now(plus: grace)), at: ["metadata", "deletionTimestamp"])
                    current.set(.integer(grace), at: ["metadata", "deletionGracePeriodSeconds"])
                }
                return (current, .modified)
            }
            return (current, .deleted)
        }
    }

    /// What a write decides from the stored state: the object to store (or the deleted one) and
    /// the kind of change, given the revision it will have.
    typealias Change = @Sendable (DatabaseConnection, Int64) throws(APIError) -> (JSONValue, ObjectEvent.Kind)

    /// Runs one write at the next revision: the row, the event and the revision commit together
    /// (with other writes that arrived at the same time), then watchers are told. A dry run
    /// checks and returns what would be stored, reading only.
    private func write(_ key: ObjectKey, dryRun: Bool, _ change: @escaping Change) async throws(APIError) -> JSONValue {
        if dryRun {
            return try await Self.storage { [database, hub] in
                try await database.read { db in
                    var (object, kind) = try change(db, hub.revision + 1)
                    // Nothing gets this revision; report the object at the version it has now.
                    let stored = kind == .added ? nil : try Self.read(key, db: db)
                    object.set(stored?[path: ["metadata", "resourceVersion"]], at: ["metadata", "resourceVersion"])
                    return object
                }
            }
        }
        return try await Self.storage { [database, hub] in
            try await database.write { transaction in
                let db = transaction.connection
                let revision = try Self.nextRevision(db)
                let (object, kind) = try change(db, revision)
                let bytes = object.serializedBytes
                try Self.store(key, kind: kind, revision: revision, object: object, bytes: bytes, db: db)
                let event = ObjectEvent(kind: kind, key: key, revision: revision, object: object, encodedObject: bytes)
                transaction.afterCommit { hub.publish(CollectionOfOne(event)) }
                return object
            }
        }
    }

    /// Takes the next revision (rolled back with the write that took it).
    private static func nextRevision(_ db: DatabaseConnection) throws(SQLiteError) -> Int64 {
        let next = try db.statement("UPDATE store_state SET value = value + 1 WHERE name = 'revision' RETURNING value")
        defer { next.reset() }
        guard try next.step() else { throw SQLiteError(code: 1, message: "the store's revision row is missing") }
        return next.int64(at: 0)
    }

    private static func store(_ key: ObjectKey, kind: ObjectEvent.Kind, revision: Int64, object: JSONValue, bytes: [UInt8],
                              db: DatabaseConnection) throws(SQLiteError) {
        if kind == .deleted {
            let remove = try db.statement("DELETE FROM objects WHERE key = ?")
            remove.bind(key.storageKey, at: 1)
            try remove.run()
        } else {
            let upsert = try db.statement("""
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
        let event = try db.statement("INSERT INTO events(revision, kind, resource, namespace, name, value) VALUES (?, ?, ?, ?, ?, ?)")
        event.bind(revision, at: 1)
        event.bind(kind.rawValue, at: 2)
        event.bind(key.resource, at: 3)
        event.bind(key.namespace, at: 4)
        event.bind(key.name, at: 5)
        event.bind(bytes: bytes, at: 6)
        try event.run()
    }

    // MARK: watching

    /// Changes to `resource` (in `namespace`, when given) after `revision`, then live ones.
    /// `410 Expired` when compaction removed changes after `revision`. The stream ends when the
    /// watcher falls ``Configuration/watcherBuffer`` events behind.
    public func watch(resource: String, namespace: String? = nil, after revision: Int64) async throws(APIError) -> AsyncStream<ObjectEvent> {
        do {
            return try await hub.watch(WatchScope(resource: resource, namespace: namespace), after: revision)
        } catch {
            switch error {
            case .tooOld: throw APIError.expired(error.description)
            case .historyUnavailable: throw APIError.internalError("storage: \(error)")
            }
        }
    }

    /// Watchers registered now.
    public var watcherCount: Int { hub.watcherCount }

    /// Tells every watcher, in order with its changes, that it has everything up to the current
    /// revision (a bookmark), so that it can resume from there rather than from an older
    /// revision compaction may have removed.
    public func sendBookmarks() {
        hub.broadcast { scope, revision in
            ObjectEvent(kind: .bookmark, key: ObjectKey(resource: scope.resource, namespace: scope.namespace ?? "", name: ""),
                        revision: revision, object: .null, encodedObject: [])
        }
    }

    /// Drops history older than the newest ``Configuration/historyLimit`` changes; watches from
    /// before that are `410 Expired` from then on.
    public func compact() async throws(APIError) {
        let historyLimit = Int64(configuration.historyLimit)
        try await Self.storage { [database, hub] in
            try await database.write { transaction in
                let db = transaction.connection
                let (revision, compacted) = try Self.readState(db)
                let through = revision - historyLimit
                guard through > compacted else { return }
                let remove = try db.statement("DELETE FROM events WHERE revision <= ?")
                remove.bind(through, at: 1)
                try remove.run()
                let save = try db.statement("UPDATE store_state SET value = ? WHERE name = 'compacted'")
                save.bind(through, at: 1)
                try save.run()
                transaction.afterCommit { hub.compact(through: through) }
            }
        }
    }

    // MARK: helpers

    private static func events(after revision: Int64, through: Int64, resource: String, namespace: String?,
                               db: DatabaseConnection) throws(SQLiteError) -> [ObjectEvent] {
        let read = try db.statement(namespace == nil
            ? "SELECT revision, kind, namespace, name, value FROM events WHERE revision > ? AND revision <= ? AND resource = ? ORDER BY revision"
            : "SELECT revision, kind, namespace, name, value FROM events WHERE revision > ? AND revision <= ? AND resource = ? AND namespace = ? ORDER BY revision")
        defer { read.reset() }
        read.bind(revision, at: 1)
        read.bind(through, at: 2)
        read.bind(resource, at: 3)
        if let namespace { read.bind(namespace, at: 4) }
        var events: [ObjectEvent] = []
        while try read.step() {
            let encoded = read.bytes(at: 4)
            guard let object = try? JSONValue(parsing: encoded) else { continue }
            events.append(ObjectEvent(
                kind: ObjectEvent.Kind(rawValue: read.string(at: 1) ?? "") ?? .modified,
                key: ObjectKey(resource: resource, namespace: read.string(at: 2) ?? "", name: read.string(at: 3) ?? ""),
                revision: read.int64(at: 0), object: object, encodedObject: encoded))
        }
        return events
    }

    private static func read(_ key: ObjectKey, db: DatabaseConnection) throws(SQLiteError) -> JSONValue? {
        let read = try db.statement("SELECT value FROM objects WHERE key = ?")
        defer { read.reset() }
        read.bind(key.storageKey, at: 1)
        guard try read.step() else { return nil }
        return read.withBytes(at: 0) { try? JSONValue(parsing: $0) }
    }

    private static func exists(_ key: ObjectKey, db: DatabaseConnection) throws(SQLiteError) -> Bool {
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

    /// Runs a database call: API errors pass through, anything else is a `500`.
    private static func storage<T>(_ body: () async throws -> T) async throws(APIError) -> T {
        do {
            return try await body()
        } catch let error as APIError {
            throw error
        } catch {
            throw APIError.internalError("storage: \(error)")
        }
    }

    /// Now, as Kubernetes writes times (`2026-01-02T03:04:05Z`).
    static func now() -> String { Date().formatted(.iso8601) }

    /// The time `seconds` from now, as Kubernetes writes timestamps.
    static func now(plus seconds: Int64) -> String { Date().addingTimeInterval(TimeInterval(seconds)).formatted(.iso8601) }
}

extension ObjectEvent: RevisionedEvent {}
