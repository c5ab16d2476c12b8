import Foundation

/// A Kubernetes label selector in its string form, as far as equality goes: `a=b`, `a==b`,
/// `a!=b`, `a` (exists) and `!a` (does not exist), joined by commas. Set-based terms
/// (`in`, `notin`) are refused with a clear error.
public struct LabelSelector: Sendable, Equatable {
    enum Term: Sendable, Equatable {
        case equals(String, String)
        case notEquals(String, String)
        case exists(String)
        case absent(String)
    }

    var terms: [Term]

    /// Matches everything.
    public static let everything = LabelSelector(terms: [])

    init(terms: [Term]) { self.terms = terms }

    /// Parses `text`; throws a description of what is wrong.
    public init(parsing text: String) throws(SelectorError) {
        var terms: [Term] = []
        for raw in text.split(separator: ",") {
            let term = raw.trimmingCharacters(in: .whitespaces)
            if term.isEmpty { continue }
            if term.contains(" in ") || term.contains(" notin ") || term.contains("(") {
                throw SelectorError(selector: text, reason: "set-based terms are not supported")
            }
            if let range = term.range(of: "!=") {
                terms.append(.notEquals(try Self.key(term[..<range.lowerBound], in: text), String(term[range.upperBound...])))
            } else if let range = term.range(of: "==") ?? term.range(of: "=") {
                terms.append(.equals(try Self.key(term[..<range.lowerBound], in: text), String(term[range.upperBound...])))
            } else if term.hasPrefix("!") {
                terms.append(.absent(try Self.key(term.dropFirst(), in: text)))
            } else {
                terms.append(.exists(try Self.key(Substring(term), in: text)))
            }
        }
        self.terms = terms
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
