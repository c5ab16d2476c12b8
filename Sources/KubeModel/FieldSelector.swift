/// A Kubernetes field selector: `path=value`, `path==value` and `path!=value` terms joined by
/// commas, where a path is dotted (`metadata.name`, `spec.nodeName`, `status.phase`). A field the
/// object lacks compares as the empty string, as in Kubernetes.
public struct FieldSelector: Sendable, Equatable {
    /// One term: a field's dotted path taken apart (`["metadata", "name"]`) and the value it is
    /// compared with.
    public enum Term: Sendable, Equatable {
        /// `path=value` or `path==value`.
        case equals([String], String)
        /// `path!=value`.
        case notEquals([String], String)
    }

    /// The terms in the order written; an object must satisfy all of them.
    public private(set) var terms: [Term]

    /// No terms: every object matches.
    public static let everything = FieldSelector(terms: [])

    init(terms: [Term]) { self.terms = terms }

    /// Parses `text`; empty text selects everything.
    public init(parsing text: String) throws(SelectorError) {
        var terms: [Term] = []
        for raw in text.split(separator: ",") where !raw.isEmpty {
            let term = String(raw)
            if let range = term.range(of: "!=") {
                terms.append(.notEquals(try Self.path(term[..<range.lowerBound], in: text), String(term[range.upperBound...])))
            } else if let range = term.range(of: "==") ?? term.range(of: "=") {
                terms.append(.equals(try Self.path(term[..<range.lowerBound], in: text), String(term[range.upperBound...])))
            } else {
                throw SelectorError(selector: text, reason: "\"\(term)\" is not field=value or field!=value")
            }
        }
        self.terms = terms
    }

    private static func path(_ raw: Substring, in text: String) throws(SelectorError) -> [String] {
        let parts = raw.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        guard !parts.isEmpty, parts.allSatisfy({ !$0.isEmpty }) else { throw SelectorError(selector: text, reason: "empty field in \"\(raw)\"") }
        return parts
    }

    /// The value of the field named by `path`, as a selector compares it.
    public static func value(at path: [String], in object: JSONValue) -> String {
        switch object[path: path] {
        case .string(let text)?: text
        case .number(let text)?: text
        case .bool(let flag)?: flag ? "true" : "false"
        default: ""
        }
    }

    /// The fields a term requires to equal a value (`metadata.name=x` → `["metadata.name": "x"]`).
    public var requiredValues: [String: String] {
        var values: [String: String] = [:]
        for case .equals(let path, let value) in terms { values[path.joined(separator: ".")] = value }
        return values
    }

    /// Whether `object` satisfies every term.
    public func matches(_ object: JSONValue) -> Bool {
        terms.allSatisfy { term in
            switch term {
            case .equals(let path, let value): Self.value(at: path, in: object) == value
            case .notEquals(let path, let value): Self.value(at: path, in: object) != value
            }
        }
    }
}

extension LabelSelector {
    /// Whether the object's `metadata.labels` satisfy the selector.
    public func matches(object: JSONValue) -> Bool {
        var labels: [String: String] = [:]
        for (key, value) in object[path: ["metadata", "labels"]]?.objectValue ?? JSONObject() {
            if let text = value.stringValue { labels[key] = text }
        }
        return matches(labels)
    }
}
