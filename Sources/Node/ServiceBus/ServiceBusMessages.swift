import Foundation

/// What a cloud caller asks ServiceBus to do: one HTTP request to a server on this node.
/// JSON, with the body base64-encoded: `{"method": "GET", "url": "http://127.0.0.1:8080/x",
/// "header": {"Accept": ["application/json"]}, "body": "..."}`.
public struct ServiceRequest: Codable, Sendable, Equatable {
    public var method: String
    public var url: String
    public var header: [String: [String]]?
    public var body: Data?

    public init(method: String, url: String, header: [String: [String]]? = nil, body: Data? = nil) {
        self.method = method
        self.url = url
        self.header = header
        self.body = body
    }
}

/// The answer: the server's status, headers and body (base64), or a status ServiceBus chose
/// when there was no usable answer (400 bad request, 403 target not allowed, 413 too large,
/// 502 unreachable or answer too large, 504 timed out) with the reason as body.
public struct ServiceResponse: Codable, Sendable, Equatable {
    public var statusCode: Int
    public var header: [String: [String]]
    public var body: Data

    public init(statusCode: Int, header: [String: [String]] = [:], body: Data = Data()) {
        self.statusCode = statusCode
        self.header = header
        self.body = body
    }
}
