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
            // A missing step is reported with the operation's whole pointer.
            func absent(_ path: [String]) -> Failure {
                Failure(description: "path \(Self.pointer(path)) does not exist", isMalformed: false)
            }
            switch operation {
            case .add(let path, let value):
                guard Self.insert(value, at: path[...], in: &result, replacing: false) else { throw absent(path) }
            case .remove(let path):
                if path.isEmpty { throw Failure(description: "cannot remove the whole document", isMalformed: false) }
                guard Self.remove(at: path[...], in: &result) != nil else { throw absent(path) }
            case .replace(let path, let value):
                guard Self.insert(value, at: path[...], in: &result, replacing: true) else { throw absent(path) }
            case .move(let from, let path):
                if path.starts(with: from), path.count > from.count {
                    throw Failure(description: "cannot move \(Self.pointer(from)) into itself", isMalformed: false)
                }
                guard let value = Self.remove(at: from[...], in: &result) else { throw absent(from) }
                guard Self.insert(value, at: path[...], in: &result, replacing: false) else { throw absent(path) }
            case .copy(let from, let path):
                guard let value = Self.value(at: from[...], in: result) else { throw absent(from) }
                guard Self.insert(value, at: path[...], in: &result, replacing: false) else { throw absent(path) }
            case .test(let path, let value):
                guard let found = Self.value(at: path[...], in: result) else { throw absent(path) }
                guard found == value else {
                    throw Failure(description: "test failed: \(Self.pointer(path)) is not \(value.serialized)", isMalformed: false)
                }
            }
        }
        return result
    }

    private static func pointer(_ tokens: [String]) -> String {
        tokens.map { "/" + $0.replacing("~", with: "~0").replacing("/", with: "~1") }.joined()
    }

    private static func arrayIndex(_ token: String, count: Int, allowEnd: Bool) -> Int? {
        if allowEnd, token == "-" { return count }
        guard let index = Int(token), index >= 0, String(index) == token, index < count || (allowEnd && index == count) else { return nil }
        return index
    }

    private static func value(at path: ArraySlice<String>, in document: JSONValue) -> JSONValue? {
        var current = document
        for token in path {
            switch current {
            case .object(let members):
                guard let next = members[token] else { return nil }
                current = next
            case .array(let items):
                guard let index = arrayIndex(token, count: items.count, allowEnd: false) else { return nil }
                current = items[index]
            default:
                return nil
            }
        }
        return current
    }

    /// Adds (or, `replacing`, replaces an existing) value at `path`; `false` when a step is missing.
    private static func insert(_ value: JSONValue, at path: ArraySlice<String>, in document: inout JSONValue, replacing: Bool) -> Bool {
        guard let token = path.first else {
            document = value
            return true
        }
        let rest = path.dropFirst()
        switch document {
        case .object(var members):
            if rest.isEmpty {
                if replacing, members[token] == nil { return false }
                members[token] = value
            } else {
                guard var child = members[token], insert(value, at: rest, in: &child, replacing: replacing) else { return false }
                members[token] = child
            }
            document = .object(members)
            return true
        case .array(var items):
            if rest.isEmpty {
                guard let index = arrayIndex(token, count: items.count, allowEnd: !replacing) else { return false }
                if replacing { items[index] = value } else { items.insert(value, at: index) }
            } else {
                guard let index = arrayIndex(token, count: items.count, allowEnd: false),
                      insert(value, at: rest, in: &items[index], replacing: replacing) else { return false }
            }
            document = .array(items)
            return true
        default:
            return false
        }
    }

    /// Removes and returns the value at `path` (not empty); `nil` when a step is missing.
    private static func remove(at path: ArraySlice<String>, in document: inout JSONValue) -> JSONValue? {
        guard let token = path.first else { return nil }
        let rest = path.dropFirst()
        switch document {
        case .object(var members):
            guard var child = members[token] else { return nil }
            let removed: JSONValue
            if rest.isEmpty {
                removed = child
                members[token] = nil
            } else {
                guard let inner = remove(at: rest, in: &child) else { return nil }
                removed = inner
                members[token] = child
            }
            document = .object(members)
            return removed
        case .array(var items):
            guard let index = arrayIndex(token, count: items.count, allowEnd: false) else { return nil }
            let removed: JSONValue
            if rest.isEmpty {
                removed = items.remove(at: index)
            } else {
                guard let inner = remove(at: rest, in: &items[index]) else { return nil }
                removed = inner
            }
            document = .array(items)
            return removed
        default:
            return nil
        }
    }
}
