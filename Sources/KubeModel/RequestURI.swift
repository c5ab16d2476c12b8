import Foundation

/// A request's URI taken apart: the path, and the query (`?a=b&c=d`) as percent-decoded items
/// (`+` reads as a space). The cloud's API server and the edge's MetaServer both read their
/// requests with it.
public struct RequestURI: Sendable {
    /// Everything before `?`, as sent (not decoded).
    public var path: String
    /// The query's items in order, names and values decoded. A name may come more than once; an
    /// item without `=` has an empty value.
    public var queryItems: [(name: String, value: String)]

    /// Takes `uri` apart; a URI without `?` has no query items.
    public init(_ uri: String) {
        guard let mark = uri.firstIndex(of: "?") else {
            path = uri
            queryItems = []
            return
        }
        path = String(uri[..<mark])
        queryItems = uri[uri.index(after: mark)...].split(separator: "&").map { item in
            let pair = item.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            return (Self.decode(pair[0]), pair.count > 1 ? Self.decode(pair[1]) : "")
        }
    }

    /// Each name's value: the last one when a name comes more than once.
    public var query: [String: String] {
        var values: [String: String] = [:]
        for (name, value) in queryItems { values[name] = value }
        return values
    }

    /// `text` with `+` as a space and percent escapes decoded; as sent when an escape is malformed.
    private static func decode(_ text: Substring) -> String {
        String(text).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? String(text)
    }
}
