import Foundation

/// A Kubernetes label selector: the string form (`a=b`, `a==b`, `a!=b`, `a` (exists), `!a`
/// (does not exist), `a in (x,y)`, `a notin (x,y)`, joined by commas) and the object form of
/// workloads (`matchLabels` and `matchExpressions` with `In`, `NotIn`, `Exists`, `DoesNotExist`).
public struct LabelSelector: Sendable, Equatable {
    enum Term: Sendable, Equatable {
        case equals(String, String)
        case notEquals(String, String)
        case exists(String)
        case absent(String)
        case `in`(String, [String])
        case notIn(String, [String])
    }

    var terms: [Term]

    /// Matches everything.
    public static let everything = LabelSelector(terms: [])

    init(terms: [Term]) { self.terms = terms }

    /// Whether it has no terms (and so selects everything).
    public var isEmpty: Bool { terms.isEmpty }

    /// Parses `text`; throws a description of what is wrong.
    public init(parsing text: String) throws(SelectorError) {
        var terms: [Term] = []
        // Split on commas outside parentheses.
        var parts: [Substring] = []
        var depth = 0
        var start = text.startIndex
        for index in text.indices {
            switch text[index] {
            case "(": depth += 1
            case ")": depth -= 1
            case "," where depth == 0:
                parts.append(text[start..<index])
                start = text.index(after: index)
            default: break
            }
        }
        parts.append(text[start...])
        guard depth == 0 else { throw SelectorError(selector: text, reason: "unbalanced parentheses") }
        for raw in parts {
            let term = raw.trimmingCharacters(in: .whitespaces)
            if term.isEmpty { continue }
            if let open = term.firstIndex(of: "(") {
                guard term.hasSuffix(")") else { throw SelectorError(selector: text, reason: "\"\(term)\" does not end with )") }
                let head = term[..<open].split(separator: " ", omittingEmptySubsequences: true)
                guard head.count == 2, head[1] == "in" || head[1] == "notin" else {
                    throw SelectorError(selector: text, reason: "\"\(term)\" is not key in (values) or key notin (values)")
                }
                let key = try Self.key(head[0], in: text)
                let values = term[term.index(after: open)..<term.index(before: term.endIndex)].split(separator: ",")
                    .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
                guard !values.isEmpty || head[1] == "notin" else { throw SelectorError(selector: text, reason: "\"\(term)\" names no value") }
                terms.append(head[1] == "in" ? .in(key, values) : .notIn(key, values))
            } else if let range = term.range(of: "!=") {
                terms.append(.notEquals(try Self.key(term[..<range.lowerBound], in: text), String(term[range.upperBound...]).trimmingCharacters(in: .whitespaces)))
            } else if let range = term.range(of: "==") ?? term.range(of: "=") {
                terms.append(.equals(try Self.key(term[..<range.lowerBound], in: text), String(term[range.upperBound...]).trimmingCharacters(in: .whitespaces)))
            } else if term.hasPrefix("!") {
                terms.append(.absent(try Self.key(term.dropFirst(), in: text)))
            } else {
                terms.append(.exists(try Self.key(Substring(term), in: text)))
            }
        }
        self.terms = terms
    }

    /// The object form (`metav1.LabelSelector`): `matchLabels`, then `matchExpressions`. An
    /// absent or empty selector selects everything (where a workload allows it).
    public init(json: JSONValue?) throws(SelectorError) {
        var terms: [Term] = []
        for (key, value) in (json?["matchLabels"]?.objectValue ?? JSONObject()).sorted(by: { $0.key < $1.key }) {
            terms.append(.equals(key, value.stringValue ?? ""))
        }
        for expression in json?["matchExpressions"]?.arrayValue ?? [] {
            let key = expression["key"]?.stringValue ?? ""
            let values = expression["values"]?.arrayValue?.compactMap(\.stringValue) ?? []
            switch expression["operator"]?.stringValue ?? "" {
            case "In": terms.append(.in(key, values))
            case "NotIn": terms.append(.notIn(key, values))
            case "Exists": terms.append(.exists(key))
            case "DoesNotExist": terms.append(.absent(key))
            case let other:
                throw SelectorError(selector: "\(json ?? .null)", reason: "\"\(other)\" is not a valid label selector operator")
            }
        }
        self.terms = terms
    }

    /// The string form, as Kubernetes prints a selector (`app=web,tier in (a,b)`).
    public var text: String {
        terms.map { term in
            switch term {
            case .equals(let key, let value): "\(key)=\(value)"
            case .notEquals(let key, let value): "\(key)!=\(value)"
            case .exists(let key): key
            case .absent(let key): "!\(key)"
            case .in(let key, let values): "\(key) in (\(values.sorted().joined(separator: ",")))"
            case .notIn(let key, let values): "\(key) notin (\(values.sorted().joined(separator: ",")))"
            }
        }.joined(separator: ",")
    }

    private static func key(_ raw: Substring, in text: String) throws(SelectorError) -> String {
        let key = raw.trimmingCharacters(in: .whitespaces)
        guard !key.isEmpty, key.utf8.count <= 317 else { throw SelectorError(selector: text, reason: "empty or overlong key") }
        return key
    }

    /// Whether `labels` satisfy every term.
    public func matches(_ labels: [String: String]) -> Bool {
        terms.allSatisfy { term in
            switch term {
            case .equals(let key, let value): labels[key] == value
            case .notEquals(let key, let value): labels[key] != value
            case .exists(let key): labels[key] != nil
            case .absent(let key): labels[key] == nil
            case .in(let key, let values): labels[key].map(values.contains) ?? false
            case .notIn(let key, let values): labels[key].map { !values.contains($0) } ?? true
            }
        }
    }
}

/// A selector that could not be parsed.
public struct SelectorError: Error, Sendable, Equatable, CustomStringConvertible {
    public var selector: String
    public var reason: String
    public var description: String { "unable to parse selector \"\(selector)\": \(reason)" }
}
