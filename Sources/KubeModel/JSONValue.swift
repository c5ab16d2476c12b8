/// A JSON value that keeps everything a Kubernetes object carries: object keys in their order,
/// numbers as written (64-bit extremes and exponents survive a round trip), and fields no Swift
/// type declares. The cloud reads, patches and writes objects through it, so unknown fields
/// survive a read-modify-write.
public enum JSONValue: Sendable, Hashable {
    case null
    case bool(Bool)
    /// The number exactly as written (validated JSON number syntax).
    case number(String)
    case string(String)
    case array([JSONValue])
    /// Members in document order; keys are unique (a later duplicate replaces an earlier one).
    case object(JSONObject)

    /// The member `key` of an object; `nil` for anything else or a missing key.
    public subscript(key: String) -> JSONValue? {
        get {
            guard case .object(let object) = self else { return nil }
            return object[key]
        }
        set {
            guard case .object(var object) = self else { return }
            object[key] = newValue
            self = .object(object)
        }
    }

    /// The value at `path` (object keys), if every step exists.
    public subscript(path path: [String]) -> JSONValue? {
        var current: JSONValue? = self
        for key in path { current = current?[key] }
        return current
    }

    /// Sets the value at `path`, creating objects on the way; `nil` removes the last key.
    public mutating func set(_ value: JSONValue?, at path: [String]) {
        guard let first = path.first else {
            if let value { self = value }
            return
        }
        if case .object = self {} else { self = .object(JSONObject()) }
        guard case .object(var object) = self else { return }
        if path.count == 1 {
            object[first] = value
        } else {
            var child = object[first] ?? .object(JSONObject())
            child.set(value, at: Array(path.dropFirst()))
            object[first] = child
        }
        self = .object(object)
    }

    public var stringValue: String? {
        if case .string(let value) = self { return value }
        return nil
    }

    public var objectValue: JSONObject? {
        if case .object(let value) = self { return value }
        return nil
    }

    public var arrayValue: [JSONValue]? {
        if case .array(let value) = self { return value }
        return nil
    }

    public var boolValue: Bool? {
        if case .bool(let value) = self { return value }
        return nil
    }

    /// The number as an `Int64`, when it is an integer in range.
    public var int64Value: Int64? {
        if case .number(let text) = self { return Int64(text) }
        return nil
    }

    /// A number from an integer.
    public static func integer(_ value: some BinaryInteger) -> JSONValue { .number(String(value)) }
}

/// A JSON object's members in order, with lookup by key.
public struct JSONObject: Sendable, Hashable, Sequence {
    public private(set) var keys: [String] = []
    private var values: [String: JSONValue] = [:]

    public init() {}

    public init(_ members: [(String, JSONValue)]) {
        for (key, value) in members { self[key] = value }
    }

    public subscript(key: String) -> JSONValue? {
        get { values[key] }
        set {
            if let newValue {
                if values.updateValue(newValue, forKey: key) == nil { keys.append(key) }
            } else if values.removeValue(forKey: key) != nil {
                keys.removeAll { $0 == key }
            }
        }
    }

    public var count: Int { keys.count }
    public var isEmpty: Bool { keys.isEmpty }

    public func makeIterator() -> AnyIterator<(key: String, value: JSONValue)> {
        var index = 0
        return AnyIterator {
            guard index < keys.count else { return nil }
            defer { index += 1 }
            return (keys[index], values[keys[index]]!)
        }
    }

    /// Equal members, whatever their order (JSON object equality).
    public static func == (lhs: JSONObject, rhs: JSONObject) -> Bool { lhs.values == rhs.values }

    public func hash(into hasher: inout Hasher) { hasher.combine(values) }
}
