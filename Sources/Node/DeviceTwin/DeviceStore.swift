import Foundation
import Synchronization
import Storage
import Transport

/// A device bound to this node, with its attributes and twin.
public struct DeviceRecord: Sendable, Equatable {
    /// `{namespace}/{name}`.
    public var id: String { "\(namespace)/\(name)" }
    public var namespace: String
    public var name: String
    public var description: String
    /// `online`, `offline` or `unknown` (before the device says).
    public var state: String
    /// When the device last said it was online (RFC 3339), empty if never.
    public var lastOnline: String
    /// Static facts about the device (its model, protocol).
    public var attributes: [String: String]
    public var twin: [String: TwinProperty]

    public init(namespace: String, name: String, description: String = "", state: String = "unknown", lastOnline: String = "",
                attributes: [String: String] = [:], twin: [String: TwinProperty] = [:]) {
        self.namespace = namespace
        self.name = name
        self.description = description
        self.state = state
        self.lastOnline = lastOnline
        self.attributes = attributes
        self.twin = twin
    }
}

/// DeviceTwin's tables in the node's SQLite file (WAL), in KubeEdge's layout — `device`,
/// `device_attr` and `device_twin` — with every device also held in memory, so that reads never
/// touch the disk and a burst of updates is written in one transaction.
///
/// Updates run on the database's writer thread against a working copy of the devices; readers
/// see the devices as of the last commit.
public final class DeviceStore: Sendable {
    /// The file, shared with the node's other stores.
    public let database: Database
    /// The devices as committed: what readers see.
    private let published: Mutex<DeviceTable>
    /// The writer thread's copy, edited in place by updates and published when they commit.
    private let working: DatabaseLocal<DeviceTable>

    /// Opens (or creates) the store in a database of its own at `path` and loads every device.
    public convenience init(path: String, maxSizeBytes: Int? = nil) throws(DeviceTwinError) {
        let database: Database
        do {
            database = try Database(configuration: DatabaseConfiguration(path: path, maxSizeBytes: maxSizeBytes))
        } catch {
            throw DeviceTwinError.storage("\(path): \(error)")
        }
        try self.init(database: database)
    }

    /// Opens (or creates) the store's tables in `database` and loads every device. Blocks while
    /// it reads: call it at start-up.
    public init(database: Database) throws(DeviceTwinError) {
        self.database = database
        let devices: [String: DeviceRecord]
        do {
            devices = try database.openBlocking { (db) throws in
                try db.execute("""
                    CREATE TABLE IF NOT EXISTS device (
                        id TEXT PRIMARY KEY, name TEXT NOT NULL, description TEXT, state TEXT, last_online TEXT);
                    CREATE TABLE IF NOT EXISTS device_attr (
                        id INTEGER PRIMARY KEY AUTOINCREMENT, deviceid TEXT NOT NULL, name TEXT NOT NULL, description TEXT,
                        value TEXT, optional INTEGER, attr_type TEXT, metadata TEXT, UNIQUE(deviceid, name));
                    CREATE TABLE IF NOT EXISTS device_twin (
                        id INTEGER PRIMARY KEY AUTOINCREMENT, deviceid TEXT NOT NULL, name TEXT NOT NULL, description TEXT,
                        expected TEXT, actual TEXT, expected_meta TEXT, actual_meta TEXT, expected_version TEXT, actual_version TEXT,
                        optional INTEGER, attr_type TEXT, metadata TEXT, UNIQUE(deviceid, name));
                    """)
                return try Self.load(db)
            }
        } catch {
            throw DeviceTwinError.storage("\(database.configuration.path): \(error)")
        }
        published = Mutex(DeviceTable(devices))
        working = DatabaseLocal(DeviceTable(devices))
    }

    private static func load(_ db: DatabaseConnection) throws(SQLiteError) -> [String: DeviceRecord] {
        var devices: [String: DeviceRecord] = [:]
        let rows = try db.statement("SELECT id, name, description, state, last_online FROM device")
        defer { rows.reset() }
        while try rows.step() {
            let id = rows.string(at: 0) ?? ""
            let namespace = id.split(separator: "/", maxSplits: 1).first.map(String.init) ?? ""
            devices[id] = DeviceRecord(
                namespace: namespace, name: rows.string(at: 1) ?? "", description: rows.string(at: 2) ?? "",
                state: rows.string(at: 3) ?? "unknown", lastOnline: rows.string(at: 4) ?? "")
        }
        let attributes = try db.statement("SELECT deviceid, name, value FROM device_attr")
        defer { attributes.reset() }
        while try attributes.step() {
            guard let id = attributes.string(at: 0), let name = attributes.string(at: 1) else { continue }
            devices[id]?.attributes[name] = attributes.string(at: 2) ?? ""
        }
        let twins = try db.statement("""
            SELECT deviceid, name, expected, actual, expected_meta, actual_meta, expected_version, actual_version, optional, attr_type FROM device_twin
            """)
        defer { twins.reset() }
        let decoder = JSONDecoder()
        func decode<T: Decodable>(_ type: T.Type, _ column: Int32) -> T? {
            guard let text = twins.string(at: column) else { return nil }
            return try? decoder.decode(type, from: Data(text.utf8))
        }
        while try twins.step() {
            guard let id = twins.string(at: 0), let name = twins.string(at: 1), devices[id] != nil else { continue }
            var property = TwinProperty(optional: twins.isNull(at: 8) ? nil : twins.int64(at: 8) != 0, type: twins.string(at: 9))
            if !twins.isNull(at: 2) {
                property.expected = TwinValue(value: twins.string(at: 2), timestamp: decode(TwinValue.Metadata.self, 4)?.timestamp)
            }
            if !twins.isNull(at: 3) {
                property.actual = TwinValue(value: twins.string(at: 3), timestamp: decode(TwinValue.Metadata.self, 5)?.timestamp)
            }
            property.expectedVersion = decode(TwinVersion.self, 6)
            property.actualVersion = decode(TwinVersion.self, 7)
            devices[id]?.twin[name] = property
        }
        return devices
    }

    /// The device named `id`: `{namespace}/{name}`, or a bare `{name}` when exactly one device
    /// on this node has it.
    public func device(_ id: String) -> DeviceRecord? {
        published.withLock { $0.resolve(id) }
    }

    /// Every device, ordered by id.
    public var devices: [DeviceRecord] { published.withLock { $0.records.values.sorted { $0.id < $1.id } } }

    /// Devices held.
    public var count: Int { published.withLock { $0.records.count } }

    /// Runs `body` on the writer thread's devices (in place), then writes what it changed in the
    /// same transaction: `body` returns the changed devices' ids with the twin properties whose
    /// rows changed. If the write fails, the devices are put back as they were before `body`.
    func update<T: Sendable>(_ body: @escaping @Sendable (inout DeviceTable) -> (changes: [DeviceChange], result: T)) async throws(DeviceTwinError) -> T {
        do {
            return try await database.write { [self] transaction in
                let before = self.working[transaction]
                transaction.afterRollback { self.working[transaction] = before }
                let (changes, result) = body(&self.working[transaction])
                guard !changes.isEmpty else { return result }
                let devices = self.working[transaction]
                for change in changes { try Self.write(change, devices: devices, db: transaction.connection) }
                transaction.afterCommit { self.published.withLock { $0 = devices } }
                return result
            }
        } catch {
            throw DeviceTwinError.storage("\(error)")
        }
    }

    private static func write(_ change: DeviceChange, devices: DeviceTable, db: DatabaseConnection) throws(SQLiteError) {
        guard let device = devices[change.id] else {
            for table in ["device_twin", "device_attr"] {
                let remove = try db.statement("DELETE FROM \(table) WHERE deviceid = ?")
                remove.bind(change.id, at: 1)
                try remove.run()
            }
            let remove = try db.statement("DELETE FROM device WHERE id = ?")
            remove.bind(change.id, at: 1)
            try remove.run()
            return
        }
        if change.device {
            let row = try db.statement("""
                INSERT INTO device(id, name, description, state, last_online) VALUES (?, ?, ?, ?, ?)
                ON CONFLICT(id) DO UPDATE SET description = excluded.description, state = excluded.state, last_online = excluded.last_online
                """)
            row.bind(device.id, at: 1)
            row.bind(device.name, at: 2)
            row.bind(device.description, at: 3)
            row.bind(device.state, at: 4)
            row.bind(device.lastOnline, at: 5)
            try row.run()
        }
        if change.attributes {
            let clear = try db.statement("DELETE FROM device_attr WHERE deviceid = ?")
            clear.bind(device.id, at: 1)
            try clear.run()
            for (name, value) in device.attributes {
                let row = try db.statement("INSERT INTO device_attr(deviceid, name, value, optional, attr_type) VALUES (?, ?, ?, 0, 'string')")
                row.bind(device.id, at: 1)
                row.bind(name, at: 2)
                row.bind(value, at: 3)
                try row.run()
            }
        }
        for name in change.twins {
            guard let property = device.twin[name] else {
                let remove = try db.statement("DELETE FROM device_twin WHERE deviceid = ? AND name = ?")
                remove.bind(device.id, at: 1)
                remove.bind(name, at: 2)
                try remove.run()
                continue
            }
            let row = try db.statement("""
                INSERT INTO device_twin(deviceid, name, expected, actual, expected_meta, actual_meta, expected_version, actual_version, optional, attr_type)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT(deviceid, name) DO UPDATE SET expected = excluded.expected, actual = excluded.actual,
                    expected_meta = excluded.expected_meta, actual_meta = excluded.actual_meta, expected_version = excluded.expected_version,
                    actual_version = excluded.actual_version, optional = excluded.optional, attr_type = excluded.attr_type
                """)
            row.bind(device.id, at: 1)
            row.bind(name, at: 2)
            row.bind(property.expected?.value, at: 3)
            row.bind(property.actual?.value, at: 4)
            row.bind(property.expected?.metadata?.timestamp.map(Self.timestampJSON), at: 5)
            row.bind(property.actual?.metadata?.timestamp.map(Self.timestampJSON), at: 6)
            row.bind(property.expectedVersion.map(Self.versionJSON), at: 7)
            row.bind(property.actualVersion.map(Self.versionJSON), at: 8)
            row.bind(property.optional.map { Int64($0 ? 1 : 0) }, at: 9)
            row.bind(property.metadata?.type, at: 10)
            try row.run()
        }
    }

    /// `{"timestamp": ms}` (KubeEdge's value metadata column).
    private static func timestampJSON(_ milliseconds: Int64) -> String { #"{"timestamp":\#(milliseconds)}"# }

    /// `{"cloud": n, "edge": n}` (KubeEdge's version columns).
    private static func versionJSON(_ version: TwinVersion) -> String { #"{"cloud":\#(version.cloud),"edge":\#(version.edge)}"# }
}

/// What one update changed for one device (all of it is written when the device was removed).
struct DeviceChange {
    var id: String
    /// The `device` row (state, description).
    var device = false
    var attributes = false
    /// Twin properties whose rows changed (or were removed).
    var twins: Set<String> = []
}

/// Why DeviceTwin refused or failed something.
public enum DeviceTwinError: Error, Sendable, Equatable, CustomStringConvertible {
    case storage(String)
    public var description: String {
        switch self {
        case .storage(let why): "device storage failed: \(why)"
        }
    }
}

/// The devices in memory, indexed by id and by name (a value: an update that fails is undone by
/// putting back the copy from before it).
struct DeviceTable: Sendable {
    private(set) var records: [String: DeviceRecord]
    private var idsByName: [String: Set<String>] = [:]

    init(_ records: [String: DeviceRecord]) {
        self.records = records
        for (id, record) in records { idsByName[record.name, default: []].insert(id) }
    }

    subscript(id: String) -> DeviceRecord? {
        get { records[id] }
        set {
            if let old = records[id] { idsByName[old.name]?.remove(id) }
            records[id] = newValue
            if let newValue { idsByName[newValue.name, default: []].insert(id) }
        }
    }

    /// The device named `id`: `{namespace}/{name}`, or a bare `{name}` held by exactly one device.
    func resolve(_ id: String) -> DeviceRecord? {
        if id.contains("/") { return records[id] }
        guard let ids = idsByName[id], ids.count == 1, let only = ids.first else { return nil }
        return records[only]
    }

    var values: Dictionary<String, DeviceRecord>.Values { records.values }
}
