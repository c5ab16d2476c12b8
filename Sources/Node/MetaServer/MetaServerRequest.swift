import Foundation
import KubeModel

/// A request MetaServer understands, parsed from a URI.
///
/// Paths: `/api/v1/{plural}`, `/api/v1/namespaces/{ns}/{plural}[/{name}]`,
/// `/api/v1/{plural}/{name}` (cluster-scoped) and the same under `/apis/{group}/{version}`.
/// Query: `watch`, `resourceVersion`, `labelSelector`, `fieldSelector` (`metadata.name`,
/// `metadata.namespace`, equality only), `timeoutSeconds`, `allowWatchBookmarks`.
struct MetaServerRequest: Equatable {
    var resource: APIResource
    /// `nil`: every namespace.
    var namespace: String?
    /// `nil`: the collection.
    var name: String?
    var watch = false
    var resourceVersion: String?
    var labelSelector = LabelSelector.everything
    var fieldName: String?
    var fieldNamespace: String?
    var timeoutSeconds: Int?
    var allowBookmarks = false

    /// Why a URI is not a request MetaServer serves, as an HTTP status and message.
    struct Refusal: Error, Equatable {
        var status: Int
        var reason: String
        var message: String
    }

    init(uri: String, resources: [APIResource]) throws(Refusal) {
        let (path, query) = Self.split(uri)
        let segments = path.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
        var rest: ArraySlice<String>
        var group = ""
        var version: String
        if segments.first == "api", segments.count >= 2 {
            version = segments[1]
            rest = segments[2...]
        } else if segments.first == "apis", segments.count >= 3 {
            group = segments[1]
            version = segments[2]
            rest = segments[3...]
        } else {
            throw Refusal(status: 404, reason: "NotFound", message: "the server could not find the requested resource")
        }
        var watchPath = false
        if rest.first == "watch" {
            watchPath = true
            rest = rest.dropFirst()
        }
        var namespace: String?
        if rest.first == "namespaces", rest.count >= 3 {
            namespace = rest[rest.startIndex + 1]
            rest = rest.dropFirst(2)
        }
        guard let plural = rest.first, rest.count <= 2,
              let resource = resources.first(where: { $0.plural == plural && $0.group == group && $0.version == version })
        else {
            throw Refusal(status: 404, reason: "NotFound", message: "the server could not find the requested resource (\(path))")
        }
        if namespace != nil, !resource.namespaced {
            throw Refusal(status: 404, reason: "NotFound", message: "\(plural) are not namespaced")
        }
        self.resource = resource
        self.namespace = namespace
        name = rest.count == 2 ? rest.last : nil
        watch = watchPath
        for (key, value) in query {
            switch key {
            case "watch": watch = watch || value == "true" || value == "1"
            case "resourceVersion": resourceVersion = value.isEmpty ? nil : value
            case "allowWatchBookmarks": allowBookmarks = value == "true" || value == "1"
            case "timeoutSeconds":
                guard let seconds = Int(value), seconds >= 0 else {
                    throw Refusal(status: 400, reason: "BadRequest", message: "timeoutSeconds must be a non-negative integer")
                }
                timeoutSeconds = seconds
            case "labelSelector":
                do {
                    labelSelector = try LabelSelector(parsing: value)
                } catch {
                    throw Refusal(status: 400, reason: "BadRequest", message: error.description)
                }
            case "fieldSelector":
                try parseFieldSelector(value)
            default:
                break  // limit, continue, pretty...: accepted and ignored (lists are whole)
            }
        }
        if name != nil, watch {
            throw Refusal(status: 405, reason: "MethodNotAllowed", message: "watch a single object with fieldSelector=metadata.name={name}")
        }
    }

    private mutating func parseFieldSelector(_ text: String) throws(Refusal) {
        for term in text.split(separator: ",") {
            let parts = term.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let field = parts.first.map { String($0).trimmingCharacters(in: CharacterSet(charactersIn: "=")) } ?? ""
            guard parts.count == 2, !term.contains("!=") else {
                throw Refusal(status: 400, reason: "BadRequest", message: "unsupported field selector \"\(term)\": only equality on metadata.name and metadata.namespace")
            }
            let value = String(parts[1]).trimmingCharacters(in: CharacterSet(charactersIn: "="))
            switch field {
            case "metadata.name": fieldName = value
            case "metadata.namespace": fieldNamespace = value
            default:
                throw Refusal(status: 400, reason: "BadRequest", message: "field label not supported: \(field)")
            }
        }
    }

    /// Path and decoded query items of `uri`.
    static func split(_ uri: String) -> (path: String, query: [(String, String)]) {
        guard let mark = uri.firstIndex(of: "?") else { return (uri, []) }
        let path = String(uri[..<mark])
        let query = uri[uri.index(after: mark)...].split(separator: "&").map { item -> (String, String) in
            let pair = item.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let decode = { (text: Substring) in (String(text).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? String(text)) }
            return (decode(pair[0]), pair.count > 1 ? decode(pair[1]) : "")
        }
        return (path, query)
    }
}
