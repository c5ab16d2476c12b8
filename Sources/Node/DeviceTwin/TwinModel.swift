/// A twin value with the time it was set (KubeEdge's `{"value": "...", "metadata": {"timestamp": ms}}`).
public struct TwinValue: Codable, Sendable, Equatable {
    public var value: String?
    public var metadata: Metadata?

    public struct Metadata: Codable, Sendable, Equatable {
        public var timestamp: Int64?
        public init(timestamp: Int64?) { self.timestamp = timestamp }
    }

    public init(value: String?, timestamp: Int64?) {
        self.value = value
        metadata = Metadata(timestamp: timestamp)
    }
}

/// Who last changed a value how often: the cloud's and the edge's counters.
public struct TwinVersion: Codable, Sendable, Equatable {
    public var cloud: Int64
    public var edge: Int64
    public init(cloud: Int64 = 0, edge: Int64 = 0) {
        self.cloud = cloud
        self.edge = edge
    }
}

/// One property of a device twin, as KubeEdge's twin documents spell it.
public struct TwinProperty: Codable, Sendable, Equatable {
    public var expected: TwinValue?
    public var actual: TwinValue?
    public var optional: Bool?
    public var metadata: TypeMetadata?
    public var expectedVersion: TwinVersion?
    public var actualVersion: TwinVersion?

    /// `{"type": "int|string|float|boolean|..."}`.
    public struct TypeMetadata: Codable, Sendable, Equatable {
        public var type: String?
        public init(type: String?) { self.type = type }
    }

    enum CodingKeys: String, CodingKey {
        case expected, actual, optional, metadata
        case expectedVersion = "expected_version"
        case actualVersion = "actual_version"
    }

    public init(expected: TwinValue? = nil, actual: TwinValue? = nil, optional: Bool? = nil, type: String? = nil,
                expectedVersion: TwinVersion? = nil, actualVersion: TwinVersion? = nil) {
        self.expected = expected
        self.actual = actual
        self.optional = optional
        metadata = type.map { TypeMetadata(type: $0) }
        self.expectedVersion = expectedVersion
        self.actualVersion = actualVersion
    }

    /// Whether the device has yet to reach the expected value.
    var hasDelta: Bool {
        guard let expected = expected?.value else { return false }
        return expected != actual?.value
    }
}

/// The body of `twin/update` (and of the documents DeviceTwin publishes).
public struct TwinUpdate: Codable, Sendable, Equatable {
    public var eventID: String?
    public var timestamp: Int64?
    public var twin: [String: TwinProperty]

    enum CodingKeys: String, CodingKey {
        case eventID = "event_id"
        case timestamp, twin
    }

    public init(eventID: String? = nil, timestamp: Int64? = nil, twin: [String: TwinProperty]) {
        self.eventID = eventID
        self.timestamp = timestamp
        self.twin = twin
    }
}

/// `twin/update/delta`: the twin and, per property, the expected value the device should take.
struct TwinDelta: TwinWritable {
    var eventID: String
    var timestamp: Int64
    var twin: [String: TwinProperty]
    var delta: [String: String]

    func write(to json: inout TwinJSON) {
        json.object { json in
            json.event(eventID, timestamp)
            json.twin(twin)
            json.key("delta")
            json.object { json in
                for name in delta.keys.sorted() { json.field(name, delta[name]!) }
            }
        }
    }
}

/// `twin/update/document`: per changed property, its previous and current value.
struct TwinDocument: TwinWritable {
    var eventID: String
    var timestamp: Int64
    var twin: [String: Change]

    struct Change {
        var last: TwinProperty?
        var current: TwinProperty
    }

    func write(to json: inout TwinJSON) {
        json.object { json in
            json.event(eventID, timestamp)
            json.key("twin")
            json.object { json in
                for name in twin.keys.sorted() {
                    let change = twin[name]!
                    json.key(name)
                    json.object { json in
                        json.key("last")
                        if let last = change.last { last.write(to: &json) } else { json.null() }  // null when new, as KubeEdge writes it
                        json.key("current")
                        change.current.write(to: &json)
                    }
                }
            }
        }
    }
}

/// A result on `…/result` topics: code 200 with the twin, or an error code with the reason.
struct TwinResult: TwinWritable {
    var eventID: String
    var timestamp: Int64
    var code: Int
    var reason: String? = nil
    var twin: [String: TwinProperty]? = nil

    func write(to json: inout TwinJSON) {
        json.object { json in
            json.event(eventID, timestamp)
            json.field("code", Int64(code))
            if let reason { json.field("reason", reason) }
            if let twin { json.twin(twin) }
        }
    }
}

/// `state/update` from a device.
struct DeviceStateUpdate: Decodable {
    var eventID: String?
    var state: String

    enum CodingKeys: String, CodingKey {
        case eventID = "event_id"
        case state
    }
}

/// The device's report to the cloud: its state and every reported (actual) value, so that the
/// newest report alone says everything (reports are coalesced per device).
public struct DeviceReport: Codable, Sendable, Equatable {
    public var device: String
    public var state: String
    public var lastOnline: String?
    public var twin: [String: TwinProperty]
}

/// One device in a membership answer.
struct MemberDevice {
    var id: String
    var name: String
    var state: String
}

/// `membership/get/result` (every device) and `membership/updated` (what changed).
struct Membership: TwinWritable {
    var eventID: String
    var timestamp: Int64
    /// Every device (in answers to `membership/get`).
    var devices: [MemberDevice]? = nil
    /// What changed (in `membership/updated`).
    var addedDevices: [MemberDevice]? = nil
    var removedDevices: [MemberDevice]? = nil

    func write(to json: inout TwinJSON) {
        json.object { json in
            json.event(eventID, timestamp)
            for (key, list) in [("devices", devices), ("added_devices", addedDevices), ("removed_devices", removedDevices)] {
                guard let list else { continue }
                json.key(key)
                json.array { json in
                    for device in list {
                        json.object { json in
                            json.field("id", device.id)
                            json.field("name", device.name)
                            json.field("state", device.state)
                        }
                    }
                }
            }
        }
    }
}

/// `…/updated`: the device's attributes changed.
struct DeviceUpdated: TwinWritable {
    var eventID: String
    var timestamp: Int64
    var attributes: [String: String]

    func write(to json: inout TwinJSON) {
        json.object { json in
            json.event(eventID, timestamp)
            json.key("attributes")
            json.object { json in
                for name in attributes.keys.sorted() { json.field(name, attributes[name]!) }
            }
        }
    }
}

/// A document DeviceTwin publishes, written with ``TwinJSON``.
protocol TwinWritable {
    func write(to json: inout TwinJSON)
}

extension TwinUpdate: TwinWritable {
    func write(to json: inout TwinJSON) {
        json.object { json in
            if let eventID { json.field("event_id", eventID) }
            if let timestamp { json.field("timestamp", timestamp) }
            json.twin(twin)
        }
    }
}

extension DeviceReport: TwinWritable {
    func write(to json: inout TwinJSON) {
        json.object { json in
            json.field("device", device)
            json.field("state", state)
            if let lastOnline { json.field("lastOnline", lastOnline) }
            json.twin(twin)
        }
    }
}
