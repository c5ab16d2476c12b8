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
struct TwinDelta: Encodable {
    var eventID: String
    var timestamp: Int64
    var twin: [String: TwinProperty]
    var delta: [String: String]

    enum CodingKeys: String, CodingKey {
        case eventID = "event_id"
        case timestamp, twin, delta
    }
}

/// `twin/update/document`: per changed property, its previous and current value.
struct TwinDocument: Encodable {
    var eventID: String
    var timestamp: Int64
    var twin: [String: Change]

    struct Change: Encodable {
        var last: TwinProperty?
        var current: TwinProperty

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(last, forKey: .last)  // null when new, as KubeEdge writes it
            try container.encode(current, forKey: .current)
        }

        enum CodingKeys: String, CodingKey { case last, current }
    }

    enum CodingKeys: String, CodingKey {
        case eventID = "event_id"
        case timestamp, twin
    }
}

/// A result on `…/result` topics: code 200 with the twin, or an error code with the reason.
struct TwinResult: Encodable {
    var eventID: String
    var timestamp: Int64
    var code: Int
    var reason: String?
    var twin: [String: TwinProperty]?

    enum CodingKeys: String, CodingKey {
        case eventID = "event_id"
        case timestamp, code, reason, twin
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
struct MemberDevice: Encodable {
    var id: String
    var name: String
    var state: String
}

/// `membership/get/result` (every device) and `membership/updated` (what changed).
struct Membership: Encodable {
    var eventID: String
    var timestamp: Int64
    /// Every device (in answers to `membership/get`).
    var devices: [MemberDevice]?
    /// What changed (in `membership/updated`).
    var addedDevices: [MemberDevice]? = nil
    var removedDevices: [MemberDevice]? = nil

    enum CodingKeys: String, CodingKey {
        case eventID = "event_id"
        case timestamp, devices
        case addedDevices = "added_devices"
        case removedDevices = "removed_devices"
    }
}

/// `…/updated`: the device's attributes changed.
struct DeviceUpdated: Encodable {
    var eventID: String
    var timestamp: Int64
    var attributes: [String: String]

    enum CodingKeys: String, CodingKey {
        case eventID = "event_id"
        case timestamp, attributes
    }
}
