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
        let parsed = RequestURI(uri)
        let path = parsed.path
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
        for (key, value) in parsed.queryItems {
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
                try select(fields: value)
            default:
                break  // limit, continue, pretty...: accepted and ignored (lists are whole)
            }
        }
        if name != nil, watch {
            throw Refusal(status: 405, reason: "MethodNotAllowed", message: "watch a single object with fieldSelector=metadata.name={name}")
        }
    }

    /// Takes `metadata.name` and `metadata.namespace` from a field selector (a later value of a
    /// field replaces an earlier one); any other field, and `!=`, is refused.
    private mutating func select(fields text: String) throws(Refusal) {
        let selector: FieldSelector
        do {
            selector = try FieldSelector(parsing: text)
        } catch {
            throw Refusal(status: 400, reason: "BadRequest", message: error.description)
        }
        for term in selector.terms {
            switch term {
            case .notEquals(let path, let value):
                let written = "\(path.joined(separator: "."))!=\(value)"
                throw Refusal(status: 400, reason: "BadRequest", message: "unsupported field selector \"\(written)\": only equality on metadata.name and metadata.namespace")
            case .equals(let path, _):
                let field = path.joined(separator: ".")
                guard field == "metadata.name" || field == "metadata.namespace" else {
                    throw Refusal(status: 400, reason: "BadRequest", message: "field label not supported: \(field)")
                }
            }
        }
        let required = selector.requiredValues
        fieldName = required["metadata.name"] ?? fieldName
        fieldNamespace = required["metadata.namespace"] ?? fieldNamespace
    }
}
