import Storage
import Synchronization
import Transport

/// One object MetaManager holds.
public struct MetaObject: Sendable, Equatable {
    public var key: ResourceKey
    /// The cloud's `metadata.resourceVersion`, when it is a number.
    public var resourceVersion: Int64?
    /// This store's revision of the change that wrote it (monotonic across restarts, like etcd's).
    public var revision: Int64
    /// The object as JSON.
    public var json: String
}

/// A change to the store, as watchers see it.
public struct MetaEvent: Sendable, Equatable {
    public enum Kind: String, Sendable {
        case added = "ADDED", modified = "MODIFIED", deleted = "DELETED"
    }

    public var kind: Kind
    /// The object after the change; for a delete, its last value with the delete's revision.
    public var object: MetaObject
}

/// A change MetaManager asks the store to make.
public enum MetaWrite: Sendable, Equatable {
    /// Stores `json` under `key` unless the stored (or deleted) version is newer.
    case upsert(ResourceKey, json: String, resourceVersion: Int64?)
    /// Removes `key` unless the stored version is newer than `resourceVersion`.
    case delete(ResourceKey, resourceVersion: Int64?)
}

/// What became of one ``MetaWrite``.
public enum MetaWriteOutcome: Sendable, Equatable {
    case applied(MetaEvent)
    /// The store holds a newer version (resource versions never go backwards); nothing changed.
    case stale(stored: Int64)
    /// A delete of something not stored; nothing changed.
    case absent
}

/// MetaManager's SQLite file (WAL): KubeEdge's `meta` table (key, type, value) plus namespace,
/// name, the cloud's resource version and this store's revision; a bounded history of changes
/// so watchers can resume; and delete tombstones so that a late, older copy of a deleted object
/// cannot bring it back.
///
/// Statements run on the file's ``Database`` threads (the file is shared with DeviceTwin's
/// store); watchers are served by a ``WatchHub``, recent changes from memory and older ones from
/// `meta_history`.
public final class MetaStore: Sendable {
    /// Limits of the store.
    public struct Configuration: Sendable {
        /// The SQLite file.
        public var path: String
        /// Changes kept for watchers resuming from an older revision. Default 10,000.
        public var historyLimit: Int
        /// Delete tombstones kept (oldest dropped first). Default 10,000.
        public var tombstoneLimit: Int
        /// Events buffered per watcher before a slow watcher is cut off (it then re-lists).
        /// Default 10,000.
        public var watcherBuffer: Int
        /// A size cap for the file, past which writes fail cleanly; `nil` for none.
        public var maxSizeBytes: Int?
        /// The newest changes also kept in memory for watches that resume. Default 256.
        public var memoryHistory: Int

        public init(path: String, historyLimit: Int = 10_000, tombstoneLimit: Int = 10_000, watcherBuffer: Int = 10_000, maxSizeBytes: Int? = nil,
                    memoryHistory: Int = 256) {
            self.path = path
            self.historyLimit = historyLimit
            self.tombstoneLimit = tombstoneLimit
            self.watcherBuffer = watcherBuffer
            self.maxSizeBytes = maxSizeBytes
            self.memoryHistory = memoryHistory
        }
    }

    /// Whose changes a watcher wants: one type, in one namespace or all.
    struct WatchScope: Sendable {
        var type: String
        var namespace: String?
    }

    public let configuration: Configuration
    /// The file, shared with the node's other stores.
    public let database: Database
    private let hub: WatchHub<MetaEvent, WatchScope>

    private static let schemaVersion: Int64 = 1

    /// Opens (or creates) the store in a database of its own.
    public convenience init(configuration: Configuration) throws(MetaError) {
        let database: Database
        do {
            database = try Database(configuration: DatabaseConfiguration(path: configuration.path, maxSizeBytes: configuration.maxSizeBytes))
        } catch {
            throw MetaError.storage("\(configuration.path): \(error)")
        }
        try self.init(configuration: configuration, database: database)
    }

    /// Opens (or creates) the store's tables in `database` (``Configuration/path`` and
    /// ``Configuration/maxSizeBytes`` are the database's then). Blocks while it reads the
    /// revision: call it at start-up.
    public init(configuration: Configuration, database: Database) throws(MetaError) {
        self.configuration = configuration
        self.database = database
        let state: (revision: Int64, compacted: Int64)
        do {
            state = try database.openBlocking { (db) throws -> (revision: Int64, compacted: Int64) in
                try db.execute("""
                    CREATE TABLE IF NOT EXISTS meta (
                        key TEXT PRIMARY KEY, type TEXT NOT NULL, value TEXT NOT NULL,
                        namespace TEXT NOT NULL, name TEXT NOT NULL, resource_version INTEGER, revision INTEGER NOT NULL);
                    CREATE INDEX IF NOT EXISTS meta_by_type ON meta(type, namespace, name);
                    CREATE TABLE IF NOT EXISTS meta_history (
                        revision INTEGER PRIMARY KEY, kind TEXT NOT NULL, key TEXT NOT NULL, type TEXT NOT NULL,
                        namespace TEXT NOT NULL, name TEXT NOT NULL, resource_version INTEGER, value TEXT NOT NULL);
                    CREATE TABLE IF NOT EXISTS meta_tombstones (key TEXT PRIMARY KEY, resource_version INTEGER, revision INTEGER NOT NULL);
                    CREATE TABLE IF NOT EXISTS meta_revision (id INTEGER PRIMARY KEY CHECK (id = 0), revision INTEGER NOT NULL);
                    INSERT OR IGNORE INTO meta_revision(id, revision) VALUES (0, 0);
                    PRAGMA user_version = \(Self.schemaVersion);
                    """)
                let revision = try db.integer("SELECT revision FROM meta_revision WHERE id = 0") ?? 0
                // Watches resume from the oldest change kept; with none kept, only from now.
                let oldest = try db.integer("SELECT MIN(revision) FROM meta_history")
                return (revision, oldest.map { $0 - 1 } ?? revision)
            }
        } catch {
            throw MetaError.storage("\(configuration.path): \(error)")
        }
        hub = WatchHub(
            revision: state.revision, compacted: state.compacted,
            configuration: WatchHubConfiguration(memoryHistory: configuration.memoryHistory, watcherBuffer: configuration.watcherBuffer),
            matches: { event, scope in Self.matches(event, type: scope.type, namespace: scope.namespace) },
            history: { after, through, scope in
                try await database.read { (db) throws in try Self.history(after: after, through: through, scope: scope, db: db) }
            })
    }

    /// The revision of the newest change.
    public var revision: Int64 { hub.revision }

    /// Applies `writes` in one transaction (all or none) and tells watchers what changed.
    public func apply(_ writes: [MetaWrite]) async throws(MetaError) -> [MetaWriteOutcome] {
        try await submit(writes).outcomes()
    }

    /// ``apply(_:)`` without waiting: the writes are queued on the database's writer thread
    /// now, behind every write submitted before, and the result is awaited later. MetaManager
    /// prepares its next batch while this one commits.
    public func submit(_ writes: [MetaWrite]) -> PendingMetaWrites {
        let configuration = configuration
        return PendingMetaWrites(write: database.startWrite { [hub] transaction in
            let db = transaction.connection
            let stored = try db.integer("SELECT revision FROM meta_revision WHERE id = 0") ?? 0
            var revision = stored
            var outcomes: [MetaWriteOutcome] = []
            outcomes.reserveCapacity(writes.count)
            for write in writes {
                outcomes.append(try Self.apply(write, db: db, revision: &revision))
            }
            if revision != stored {
                let save = try db.statement("UPDATE meta_revision SET revision = ? WHERE id = 0")
                save.bind(revision, at: 1)
                try save.run()
                try Self.trim(db: db, revision: revision, configuration: configuration)
                let events = outcomes.compactMap { outcome -> MetaEvent? in
                    guard case .applied(let event) = outcome else { return nil }
                    return event
                }
                let compacted = revision - Int64(configuration.historyLimit)
                transaction.afterCommit {
                    hub.publish(events)
                    hub.compact(through: compacted)
                }
            }
            return outcomes
        })
    }

    /// Writes handed to ``submit(_:)``, awaited once they committed.
    public struct PendingMetaWrites: Sendable {
        let write: PendingWrite<[MetaWriteOutcome]>

        /// Each write's outcome, in order, once the transaction committed; the store's error if it
        /// did not.
        public func outcomes() async throws(MetaError) -> [MetaWriteOutcome] {
            do {
                return try await write.value()
            } catch let error as SQLiteError {
                throw MetaError.storage(error.description)
            } catch {
                throw MetaError.storage("\(error)")
            }
        }
    }

    private static func apply(_ write: MetaWrite, db: DatabaseConnection, revision: inout Int64) throws(SQLiteError) -> MetaWriteOutcome {
        switch write {
        case .upsert(let key, let json, let resourceVersion):
            let current = try stored(key, db: db)
            if let resourceVersion {
                if let storedVersion = current?.resourceVersion, storedVersion > resourceVersion { return .stale(stored: storedVersion) }
                if current == nil, let deleted = try tombstone(key, db: db), deleted > resourceVersion { return .stale(stored: deleted) }
            }
            revision += 1
            let object = MetaObject(key: key, resourceVersion: resourceVersion, revision: revision, json: json)
            let upsert = try db.statement("""
                INSERT INTO meta(key, type, value, namespace, name, resource_version, revision) VALUES (?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT(key) DO UPDATE SET value = excluded.value, resource_version = excluded.resource_version, revision = excluded.revision
                """)
            bind(object, to: upsert)
            try upsert.run()
            if current == nil {
                let clear = try db.statement("DELETE FROM meta_tombstones WHERE key = ?")
                clear.bind(key.description, at: 1)
                try clear.run()
            }
            let event = MetaEvent(kind: current == nil ? .added : .modified, object: object)
            try record(event, db: db)
            return .applied(event)
        case .delete(let key, let resourceVersion):
            guard let current = try stored(key, db: db) else { return .absent }
            if let resourceVersion, let storedVersion = current.resourceVersion, storedVersion > resourceVersion {
                return .stale(stored: storedVersion)
            }
            revision += 1
            let remove = try db.statement("DELETE FROM meta WHERE key = ?")
            remove.bind(key.description, at: 1)
            try remove.run()
            let mark = try db.statement("INSERT OR REPLACE INTO meta_tombstones(key, resource_version, revision) VALUES (?, ?, ?)")
            mark.bind(key.description, at: 1)
            mark.bind(max(current.resourceVersion ?? 0, resourceVersion ?? 0), at: 2)
            mark.bind(revision, at: 3)
            try mark.run()
            var object = current
            object.revision = revision
            let event = MetaEvent(kind: .deleted, object: object)
            try record(event, db: db)
            return .applied(event)
        }
    }

    private static func bind(_ object: MetaObject, to statement: PreparedStatement) {
        statement.bind(object.key.description, at: 1)
        statement.bind(object.key.type, at: 2)
        statement.bind(object.json, at: 3)
        statement.bind(object.key.namespace, at: 4)
        statement.bind(object.key.name, at: 5)
        statement.bind(object.resourceVersion, at: 6)
        statement.bind(object.revision, at: 7)
    }

    private static func record(_ event: MetaEvent, db: DatabaseConnection) throws(SQLiteError) {
        let insert = try db.statement("""
            INSERT INTO meta_history(revision, kind, key, type, namespace, name, resource_version, value) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
            """)
        insert.bind(event.object.revision, at: 1)
        insert.bind(event.kind.rawValue, at: 2)
        insert.bind(event.object.key.description, at: 3)
        insert.bind(event.object.key.type, at: 4)
        insert.bind(event.object.key.namespace, at: 5)
        insert.bind(event.object.key.name, at: 6)
        insert.bind(event.object.resourceVersion, at: 7)
        insert.bind(event.object.json, at: 8)
        try insert.run()
    }

    private static func trim(db: DatabaseConnection, revision: Int64, configuration: Configuration) throws(SQLiteError) {
        let history = try db.statement("DELETE FROM meta_history WHERE revision <= ?")
        history.bind(revision - Int64(configuration.historyLimit), at: 1)
        try history.run()
        let tombstones = try db.statement("""
            DELETE FROM meta_tombstones WHERE revision <= (SELECT revision FROM meta_tombstones ORDER BY revision DESC LIMIT 1 OFFSET ?)
            """)
        tombstones.bind(Int64(configuration.tombstoneLimit), at: 1)
        try tombstones.run()
    }

    private static func stored(_ key: ResourceKey, db: DatabaseConnection) throws(SQLiteError) -> MetaObject? {
        let read = try db.statement("SELECT resource_version, revision, value FROM meta WHERE key = ?")
        defer { read.reset() }
        read.bind(key.description, at: 1)
        guard try read.step() else { return nil }
        return MetaObject(
            key: key, resourceVersion: read.isNull(at: 0) ? nil : read.int64(at: 0), revision: read.int64(at: 1),
            json: read.string(at: 2) ?? "")
    }

    private static func tombstone(_ key: ResourceKey, db: DatabaseConnection) throws(SQLiteError) -> Int64? {
        let read = try db.statement("SELECT resource_version FROM meta_tombstones WHERE key = ?")
        defer { read.reset() }
        read.bind(key.description, at: 1)
        guard try read.step(), !read.isNull(at: 0) else { return nil }
        return read.int64(at: 0)
    }

    /// The object stored under `key`.
    public func get(_ key: ResourceKey) async throws(MetaError) -> MetaObject? {
        do {
            return try await database.read { (db) throws in try Self.stored(key, db: db) }
        } catch {
            throw MetaError.storage("\(error)")
        }
    }

    /// The objects of `type` (in `namespace`, or in every namespace when `nil`), ordered by
    /// namespace and name, and the revision they are current at (read in one snapshot).
    public func list(type: String, namespace: String? = nil) async throws(MetaError) -> (objects: [MetaObject], revision: Int64) {
        do {
            return try await database.read { (db) throws -> (objects: [MetaObject], revision: Int64) in
                let read = try db.statement(namespace == nil
                    ? "SELECT namespace, name, resource_version, revision, value FROM meta WHERE type = ? ORDER BY namespace, name"
                    : "SELECT namespace, name, resource_version, revision, value FROM meta WHERE type = ? AND namespace = ? ORDER BY name")
                defer { read.reset() }
                read.bind(type, at: 1)
                if let namespace { read.bind(namespace, at: 2) }
                var objects: [MetaObject] = []
                while try read.step() {
                    objects.append(MetaObject(
                        key: ResourceKey(namespace: read.string(at: 0) ?? "", type: type, name: read.string(at: 1) ?? ""),
                        resourceVersion: read.isNull(at: 2) ? nil : read.int64(at: 2), revision: read.int64(at: 3),
                        json: read.string(at: 4) ?? ""))
                }
                return (objects, try db.integer("SELECT revision FROM meta_revision WHERE id = 0") ?? 0)
            }
        } catch {
            throw MetaError.storage("\(error)")
        }
    }

    /// Changes after `revision` to objects of `type` (and `namespace`, when given), then every
    /// later change as it is applied. Throws ``MetaStoreError/revisionCompacted(oldest:)`` when
    /// the history no longer reaches back to `revision` (the watcher must list again). The stream
    /// ends when the watcher falls more than ``Configuration/watcherBuffer`` events behind.
    public func watch(type: String, namespace: String? = nil, after revision: Int64) async throws(MetaStoreError) -> AsyncStream<MetaEvent> {
        do {
            return try await hub.watch(WatchScope(type: type, namespace: namespace), after: revision)
        } catch {
            switch error {
            case .tooOld(_, let compacted): throw MetaStoreError.revisionCompacted(oldest: compacted + 1)
            case .historyUnavailable(let why): throw MetaStoreError.storage(why)
            }
        }
    }

    /// Watchers currently registered.
    public var watcherCount: Int { hub.watcherCount }

    private static func matches(_ event: MetaEvent, type: String, namespace: String?) -> Bool {
        event.object.key.type == type && (namespace == nil || event.object.key.namespace == namespace)
    }

    private static func history(after revision: Int64, through: Int64, scope: WatchScope, db: DatabaseConnection) throws(SQLiteError) -> [MetaEvent] {
        let read = try db.statement("""
            SELECT kind, namespace, type, name, resource_version, revision, value FROM meta_history
            WHERE revision > ? AND revision <= ? AND type = ? ORDER BY revision
            """)
        defer { read.reset() }
        read.bind(revision, at: 1)
        read.bind(through, at: 2)
        read.bind(scope.type, at: 3)
        var events: [MetaEvent] = []
        while try read.step() {
            let key = ResourceKey(namespace: read.string(at: 1) ?? "", type: read.string(at: 2) ?? "", name: read.string(at: 3) ?? "")
            let event = MetaEvent(
                kind: MetaEvent.Kind(rawValue: read.string(at: 0) ?? "") ?? .modified,
                object: MetaObject(
                    key: key, resourceVersion: read.isNull(at: 4) ? nil : read.int64(at: 4), revision: read.int64(at: 5),
                    json: read.string(at: 6) ?? ""))
            if matches(event, type: scope.type, namespace: scope.namespace) { events.append(event) }
        }
        return events
    }
}

extension MetaEvent: RevisionedEvent {
    public var revision: Int64 { object.revision }
}

/// Why a watch could not start.
public enum MetaStoreError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The history starts after the requested revision (Kubernetes answers 410 Gone).
    case revisionCompacted(oldest: Int64)
    case storage(String)

    public var description: String {
        switch self {
        case .revisionCompacted(let oldest): "too old resource version: the oldest change kept is \(oldest)"
        case .storage(let why): "storage failed: \(why)"
        }
    }
}
