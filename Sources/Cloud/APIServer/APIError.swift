import KubeModel
/// A failure the API server reports as a Kubernetes `Status` (kind `Status`, `reason`, `code`).
public struct APIError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The HTTP status code (404, 409, 410, 422, ...).
    public var code: Int
    /// Kubernetes' `StatusReason` (`NotFound`, `AlreadyExists`, `Conflict`, `Expired`, ...).
    public var reason: String
    public var message: String
    /// The `Status`'s `details` (name, group, kind and the causes of an `Invalid`), when given.
    public var details: JSONValue?

    public init(code: Int, reason: String, message: String, details: JSONValue? = nil) {
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details
    }

    public var description: String { "\(code) \(reason): \(message)" }

    public static func notFound(_ resource: String, _ name: String) -> APIError {
        APIError(code: 404, reason: "NotFound", message: "\(resource) \"\(name)\" not found")
    }

    public static func alreadyExists(_ resource: String, _ name: String) -> APIError {
        APIError(code: 409, reason: "AlreadyExists", message: "\(resource) \"\(name)\" already exists")
    }

    public static func conflict(_ resource: String, _ name: String) -> APIError {
        APIError(code: 409, reason: "Conflict",
                 message: "Operation cannot be fulfilled on \(resource) \"\(name)\": the object has been modified; please apply your changes to the latest version and try again")
    }

    public static func expired(_ message: String) -> APIError { APIError(code: 410, reason: "Expired", message: message) }

    public static func invalid(_ message: String) -> APIError { APIError(code: 422, reason: "Invalid", message: message) }

    public static func badRequest(_ message: String) -> APIError { APIError(code: 400, reason: "BadRequest", message: message) }

    public static func internalError(_ message: String) -> APIError { APIError(code: 500, reason: "InternalError", message: message) }

    /// The `Status` object for this error.
    public var status: JSONValue {
        var status = JSONObject([
            ("kind", .string("Status")), ("apiVersion", .string("v1")), ("metadata", .object(JSONObject())), ("status", .string("Failure")),
            ("message", .string(message)), ("reason", .string(reason)),
        ])
        if let details { status["details"] = details }
        status["code"] = .integer(code)
        return .object(status)
    }
}
