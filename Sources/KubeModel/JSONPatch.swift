/// A JSON patch (RFC 6902): a list of operations (`add`, `remove`, `replace`, `move`, `copy`,
/// `test`) on JSON pointers (RFC 6901). What `kubectl patch --type json` sends, and what
/// `kubectl rollout undo` sends to put an earlier pod template back.
public struct JSONPatch: Sendable {
    /// Why a patch could not be read or applied.
    public struct Failure: Error, Sendable, CustomStringConvertible {
        public let description: String
        /// The patch itself is malformed (400), rather than not applicable to the object (422).
        public let isMalformed: Bool
    }

    enum Operation: Sendable {
        case add(path: [String], value: JSONValue)
        case remove(path: [String])
        case replace(path: [String], value: JSONValue)
        case move(from: [String], path: [String])
        case copy(from: [String], path: [String])
        case test(path: [String], value: JSONValue)
    }

    let operations: [Operation]

    /// Reads a patch: a JSON array of operation objects.
    public init(_ document: JSONValue) throws(Failure) {
        guard let list = document.arrayValue else {
            throw Failure(description: "a JSON patch must be an array of operations", isMalformed: true)
        }
        var operations: [Operation] = []
        for (index, entry) in list.enumerated() {
            guard let op = entry["op"]?.stringValue else {
                throw Failure(description: "operation \(index) has no \"op\"", isMalformed: true)
            }
            func pointer(_ field: String) throws(Failure) -> [String] {
                guard let text = entry[field]?.stringValue else {
                    throw Failure(description: "operation \(index) (\(op)) has no \"\(field)\"", isMalformed: true)
                }
                return try Self.tokens(of: text)
            }
            func value() throws(Failure) -> JSONValue {
                guard let value = entry["value"] else {
                    throw Failure(description: "operation \(index) (\(op)) has no \"value\"", isMalformed: true)
                }
                return value
            }
            switch op {
            case "add": operations.append(.add(path: try pointer("path"), value: try value()))
            case "remove": operations.append(.remove(path: try pointer("path")))
            case "replace": operations.append(.replace(path: try pointer("path"), value: try value()))
            case "move": operations.append(.move(from: try pointer("from"), path: try pointer("path")))
            case "copy": operations.append(.copy(from: try pointer("from"), path: try pointer("path")))
            case "test": operations.append(.test(path: try pointer("path"), value: try value()))
            default: throw Failure(description: "operation \(index) has an unknown op \"\(op)\"", isMalformed: true)
            }
        }
        self.operations = operations
    }

    /// The reference tokens of a JSON pointer (`""` is the whole document).
    static func tokens(of pointer: String) throws(Failure) -> [String] {
        if pointer.isEmpty { return [] }
        guard pointer.hasPrefix("/") else {
            throw Failure(description: "JSON pointer \"\(pointer)\" does not start with /", isMalformed: true)
        }
        return pointer.dropFirst().split(separator: "/", omittingEmptySubsequences: false).map {
            String($0).replacing("~1", with: "/").replacing("~0", with: "~")
        }
    }

    /// `document` with every operation applied in order; all or nothing.
    public func applied(to document: JSONValue) throws(Failure) -> JSONValue {
        var result = document
        for operation in operations {
            switch operation {
            case .add(let path, let value):
                try Self.insert(value, at: path[...], in: &result, replacing: false)
            case .remove(let path):
                _ = try Self.remove(at: path[...], in: &result)
            case .replace(let path, let value):
                try Self.insert(value, at: path[...], in: &result, replacing: true)
            case .move(let from, let path):
                if path.starts(with: from), path.count > from.count {
                    throw Failure(description: "cannot move \(Self.pointer(from)) into itself", isMalformed: false)
                }
                let value = try Self.remove(at: from[...], in: &result)
                try Self.insert(value, at: path[...], in: &result, replacing: false)
            case .copy(let from, let path):
                try Self.insert(try Self.value(at: from[...], in: result), at: path[...], in: &result, replacing: false)
            case .test(let path, let value):
                guard try Self.value(at: path[...], in: result) == value else {
                    throw Failure(description: "test failed: \(Self.pointer(path)) is not \(value.serialized)", isMalformed: false)
                }
            }
        }
        return result
    }

    private static func pointer(_ tokens: [String]) -> String {
        tokens.map { "/" + $0.replacing("~", with: "~0").replacing("/", with: "~1") }.joined()
    }

    private static func missing(_ path: ArraySlice<String>) -> Failure {
        Failure(description: "path \(pointer(Array(path))) does not exist", isMalformed: false)
    }

    private static func arrayIndex(_ token: String, count: Int, allowEnd: Bool) -> Int? {
        if allowEnd, token == "-" { return count }
        guard let index = Int(token), index >= 0, String(index) == token, index < count || (allowEnd && index == count) else { return nil }
        return index
    }

    private static func value(at path: ArraySlice<String>, in document: JSONValue) throws(Failure) -> JSONValue {
        var current = document
        for token in path {
            switch current {
            case .object(let members):
                guard let next = members[token] else { throw missing(path) }
                current = next
            case .array(let items):
                guard let index = arrayIndex(token, count: items.count, allowEnd: false) else { throw missing(path) }
                current = items[index]
            default:
                throw missing(path)
            }
        }
        return current
    }

    /// Adds (or, `replacing`, replaces an existing) value at `path`.
    private static func insert(_ value: JSONValue, at path: ArraySlice<String>, in document: inout JSONValue, replacing: Bool) throws(Failure) {
        guard let token = path.first else {
            document = value
            return
        }
        let rest = path.dropFirst()
        switch document {
        case .object(var members):
            if rest.isEmpty {
                if replacing, members[token] == nil { throw missing(path) }
                members[token] = value
            } else {
                guard var child = members[token] else { throw missing(path) }
                try insert(value, at: rest, in: &child, replacing: replacing)
                members[token] = child
            }
            document = .object(members)
        case .array(var items):
            if rest.isEmpty {
                guard let index = arrayIndex(token, count: items.count, allowEnd: !replacing) else { throw missing(path) }
                if replacing { items[index] = value } else { items.insert(value, at: index) }
            } else {
                guard let index = arrayIndex(token, count: items.count, allowEnd: false) else { throw missing(path) }
                try insert(value, at: rest, in: &items[index], replacing: replacing)
            }
            document = .array(items)
        default:
            throw missing(path)
        }
    }

    /// Removes and returns the value at `path`.
    private static func remove(at path: ArraySlice<String>, in document: inout JSONValue) throws(Failure) -> JSONValue {
        guard let token = path.first else {
            throw Failure(description: "cannot remove the whole document", isMalformed: false)
        }
        let rest = path.dropFirst()
        switch document {
        case .object(var members):
            guard var child = members[token] else { throw missing(path) }
            let removed: JSONValue
            if rest.isEmpty {
                removed = child
                members[token] = nil
            } else {
                removed = try remove(at: rest, in: &child)
                members[token] = child
            }
            document = .object(members)
            return removed
        case .array(var items):
            guard let index = arrayIndex(token, count: items.count, allowEnd: false) else { throw missing(path) }
            let removed = rest.isEmpty ? items.remove(at: index) : try remove(at: rest, in: &items[index])
            document = .array(items)
            return removed
        default:
            throw missing(path)
        }
    }
}
