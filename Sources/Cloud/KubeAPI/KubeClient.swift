import Foundation
import KubeModel
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// A client of any conformant Kubernetes API server: typed paths for the resources cloudcore
/// uses, objects as ``JSONValue`` (so fields this code does not know survive a
/// read-modify-write), errors as the server's `Status` (``APIError``), and watches as streams.
public final class KubeClient: Sendable {
    /// How objects travel.
    public enum Encoding: Sendable {
        case json
        /// Kubernetes protobuf for the built-in kinds (as client-go sends them), JSON for the
        /// rest and for patches; responses are read in whichever the server answered.
        case protobuf
    }

    public let configuration: Kubeconfig
    public let encoding: Encoding
    /// The largest JSON response (or watch event) read; larger ones are an error. Default 1 GiB,
    /// room for a list of 100,000 pods (kube-apiserver sends lists of any size).
    public let maxResponseBytes: Int
    private let pool: HTTPConnectionPool

    /// - Parameters:
    ///   - maxIdleConnections: keep-alive connections kept for reuse (default 32).
    ///   - maxConnections: requests in flight at once, each on its own connection; more wait
    ///     for one to finish (default 32). Watches hold connections of their own.
    ///   - maxResponseBytes: see ``maxResponseBytes``.
    public init(configuration: Kubeconfig, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton, maxIdleConnections: Int = 32,
                maxConnections: Int = 32, encoding: Encoding = .json, maxResponseBytes: Int = 1 << 30) throws {
        self.configuration = configuration
        self.encoding = encoding
        self.maxResponseBytes = maxResponseBytes
        guard let url = URLComponents(string: configuration.server), let host = url.host, let scheme = url.scheme else {
            throw KubeconfigError("server \(configuration.server) is not a URL")
        }
        var endpoint = HTTPConnectionPool.Endpoint(host: host, port: url.port ?? (scheme == "https" ? 443 : 80))
        if scheme == "https" {
            var tls = TLSConfiguration.makeClientConfiguration()
            tls.minimumTLSVersion = .tlsv12
            if configuration.insecureSkipTLSVerify { tls.certificateVerification = .none }
            if let ca = configuration.certificateAuthorityPEM { tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMBytes(ca)) }
            if let certificate = configuration.clientCertificatePEM, let key = configuration.clientKeyPEM {
                tls.certificateChain = try NIOSSLCertificate.fromPEMBytes(certificate).map { .certificate($0) }
                tls.privateKey = .privateKey(try NIOSSLPrivateKey(bytes: key, format: .pem))
            }
            endpoint.tls = try NIOSSLContext(configuration: tls)
            // No SNI for an IP address (the certificate is still verified against its SANs).
            endpoint.serverName = host.first?.isNumber == true || host.contains(":") ? nil : host
        }
        pool = HTTPConnectionPool(endpoint: endpoint, group: group, maxIdle: maxIdleConnections, maxConnections: maxConnections, maxResponseBytes: maxResponseBytes)
    }

    /// How a patch is to be read.
    public enum PatchType: String, Sendable {
        case merge = "application/merge-patch+json"
        case strategic = "application/strategic-merge-patch+json"
    }

    /// One watch event (`ADDED`, `MODIFIED`, `DELETED`, `BOOKMARK`).
    public struct WatchEvent: Sendable, Equatable {
        public var type: String
        public var object: JSONValue
    }

    // MARK: operations

    public func get(_ resource: APIResource, namespace: String? = nil, name: String) async throws -> JSONValue {
        try await call(.GET, path(resource, namespace, name), resource: resource)
    }

    /// The objects and the list's resourceVersion (to watch from).
    public func list(_ resource: APIResource, namespace: String? = nil, labelSelector: String? = nil, fieldSelector: String? = nil)
        async throws -> (items: [JSONValue], resourceVersion: String) {
        var query: [(String, String)] = []
        if let labelSelector { query.append(("labelSelector", labelSelector)) }
        if let fieldSelector { query.append(("fieldSelector", fieldSelector)) }
        let list = try await call(.GET, path(resource, namespace, nil), query: query, resource: resource)
        return (list["items"]?.arrayValue ?? [], list[path: ["metadata", "resourceVersion"]]?.stringValue ?? "")
    }

    public func create(_ resource: APIResource, namespace: String? = nil, _ object: JSONValue) async throws -> JSONValue {
        try await call(.POST, path(resource, namespace, nil), body: object, resource: resource)
    }

    /// Replaces the object (named by its metadata); its resourceVersion makes it conditional.
    public func update(_ resource: APIResource, namespace: String? = nil, _ object: JSONValue) async throws -> JSONValue {
        try await call(.PUT, path(resource, namespace, object[path: ["metadata", "name"]]?.stringValue ?? ""), body: object, resource: resource)
    }

    /// Replaces the object's status only.
    public func updateStatus(_ resource: APIResource, namespace: String? = nil, _ object: JSONValue) async throws -> JSONValue {
        try await call(.PUT, path(resource, namespace, object[path: ["metadata", "name"]]?.stringValue ?? "") + "/status", body: object, resource: resource)
    }

    public func patch(_ resource: APIResource, namespace: String? = nil, name: String, _ patch: JSONValue, type: PatchType = .merge,
                      status: Bool = false) async throws -> JSONValue {
        try await call(.PATCH, path(resource, namespace, name) + (status ? "/status" : ""), body: patch, contentType: type.rawValue)
    }

    @discardableResult
    public func delete(_ resource: APIResource, namespace: String? = nil, name: String) async throws -> JSONValue {
        try await call(.DELETE, path(resource, namespace, name), resource: resource)
    }

    /// Deletes with DeleteOptions (`gracePeriodSeconds`, `preconditions`, `propagationPolicy`)
    /// in the body, as client-go sends them.
    @discardableResult
    public func delete(_ resource: APIResource, namespace: String? = nil, name: String, options: JSONValue) async throws -> JSONValue {
        try await call(.DELETE, path(resource, namespace, name), body: options)
    }

    /// `POST {object}/{subresource}` (`serviceaccounts/{name}/token`, `pods/{name}/binding`…):
    /// the server's answer.
    public func create(_ resource: APIResource, namespace: String? = nil, name: String, subresource: String, _ body: JSONValue) async throws -> JSONValue {
        try await call(.POST, path(resource, namespace, name) + "/" + subresource, body: body)
    }

    /// Hands `onEvent` the events after `resourceVersion`, with bookmarks, in the calling task,
    /// until the server ends the watch (`timeoutSeconds`; then it returns), `onEvent` throws, or
    /// the task is cancelled. A `410 Expired` or any other error the server sends is thrown as
    /// an ``APIError``.
    public func watch(_ resource: APIResource, namespace: String? = nil, resourceVersion: String, labelSelector: String? = nil,
                      fieldSelector: String? = nil, timeoutSeconds: Int = 300, onEvent: (WatchEvent) throws -> Void) async throws {
        var query = [("watch", "true"), ("resourceVersion", resourceVersion), ("allowWatchBookmarks", "true"), ("timeoutSeconds", String(timeoutSeconds))]
        if let labelSelector { query.append(("labelSelector", labelSelector)) }
        if let fieldSelector { query.append(("fieldSelector", fieldSelector)) }
        let target = path(resource, namespace, nil) + "?" + Self.encode(query)
        var pending: [UInt8] = []
        try await withoutActuallyEscaping(onEvent) { onEvent in
            let deliver = UncheckedBox(onEvent)
            try await exchange(.GET, target, accept: accept(for: resource)) { status, chunk in
                pending += chunk
                guard status == 200 else { return }
                // Protobuf frames start with their length; JSON events with `{`.
                if let first = pending.first, first != UInt8(ascii: "{"), first != UInt8(ascii: "\n") {
                    for (type, object) in try KubeProtobuf.builtIn.watchEvents(from: &pending) {
                        if type == "ERROR" { throw Self.error(from: object, status: object["code"]?.int64Value.map(Int.init) ?? 500) }
                        try deliver.value(WatchEvent(type: type, object: object))
                    }
                    return
                }
                while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                    let line = Array(pending[..<newline])
                    pending.removeSubrange(...newline)
                    guard !line.isEmpty else { continue }
                    let event = try JSONValue(parsing: line, limits: self.limits)
                    let type = event["type"]?.stringValue ?? ""
                    let object = event["object"] ?? .null
                    if type == "ERROR" { throw Self.error(from: object, status: object["code"]?.int64Value.map(Int.init) ?? 500) }
                    try deliver.value(WatchEvent(type: type, object: object))
                }
            } finished: { status in
                if status != 200 { throw Self.error(from: (try? Self.decode(pending, limits: self.limits)) ?? .null, status: status) }
            }
        }
    }

    // MARK: HTTP

    func path(_ resource: APIResource, _ namespace: String?, _ name: String?) -> String {
        var path = resource.group.isEmpty ? "/api/\(resource.version)" : "/apis/\(resource.group)/\(resource.version)"
        if resource.namespaced, let namespace { path += "/namespaces/\(namespace)" }
        path += "/\(resource.plural)"
        if let name { path += "/\(name)" }
        return path
    }

    private func call(_ method: HTTPMethod, _ path: String, query: [(String, String)] = [], body: JSONValue? = nil,
                      contentType: String = "application/json", resource: APIResource? = nil) async throws -> JSONValue {
        var bytes = body?.serializedBytes
        var contentType = contentType
        if let body, let resource, contentType == "application/json", usesProtobuf(resource) {
            // The body's kind is the resource's: the server fills it in for JSON, protobuf names it.
            var object = body
            object["apiVersion"] = .string(resource.groupVersion)
            object["kind"] = .string(resource.kind)
            bytes = try KubeProtobuf.builtIn.encodeObject(object)
            contentType = KubeProtobuf.contentType
        }
        let head = requestHead(method, query.isEmpty ? path : path + "?" + Self.encode(query), contentType: bytes == nil ? nil : contentType,
                               contentLength: bytes?.count, accept: accept(for: resource))
        let response = try await pool.perform(head, body: bytes, idempotent: method != .POST)
        let value = try Self.decode(response.body, limits: limits)
        guard (200..<300).contains(response.status) else { throw Self.error(from: value, status: response.status) }
        return value
    }

    /// A response body: JSON, or a protobuf envelope (`k8s\0`), or nothing.
    private static func decode(_ body: [UInt8], limits: JSONValue.ParseLimits) throws -> JSONValue {
        if body.isEmpty { return .null }
        if body.starts(with: KubeProtobuf.magic) { return try KubeProtobuf.builtIn.decodeObject(body) }
        return try JSONValue(parsing: body, limits: limits)
    }

    /// What a response may hold.
    private var limits: JSONValue.ParseLimits { JSONValue.ParseLimits(maxBytes: maxResponseBytes) }

    private func usesProtobuf(_ resource: APIResource?) -> Bool {
        guard encoding == .protobuf, let resource else { return false }
        return KubeProtobuf.builtIn.messageName(apiVersion: resource.groupVersion, kind: resource.kind) != nil
    }

    /// client-go's `Accept` for a built-in kind in protobuf: protobuf first, JSON as the fallback.
    private func accept(for resource: APIResource?) -> String {
        usesProtobuf(resource) ? KubeProtobuf.contentType + ", application/json" : "application/json"
    }

    private func requestHead(_ method: HTTPMethod, _ target: String, contentType: String?, contentLength: Int?, accept: String = "application/json") -> HTTPRequestHead {
        var head = HTTPRequestHead(version: .http1_1, method: method, uri: target)
        head.headers.add(name: "Host", value: "\(pool.endpoint.host):\(pool.endpoint.port)")
        head.headers.add(name: "Accept", value: accept)
        head.headers.add(name: "User-Agent", value: "swift-kubeedge")
        if let token = configuration.token { head.headers.add(name: "Authorization", value: "Bearer \(token)") }
        if let contentType, let contentLength {
            head.headers.add(name: "Content-Type", value: contentType)
            head.headers.add(name: "Content-Length", value: "\(contentLength)")
        }
        return head
    }

    /// A streamed request (a watch) on a connection of its own; `chunk` sees the body as it arrives.
    private func exchange(_ method: HTTPMethod, _ target: String, accept: String = "application/json", chunk: @escaping (Int, [UInt8]) throws -> Void,
                          finished: (Int) throws -> Void) async throws {
        let channel = try await pool.connect { channel in
            try NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>(wrappingChannelSynchronously: channel)
        }
        let head = requestHead(method, target, contentType: nil, contentLength: nil, accept: accept)
        try await channel.executeThenClose { inbound, outbound in
            try await outbound.write(.head(head))
            try await outbound.write(.end(nil))
            var status = 0
            for try await part in inbound {
                switch part {
                case .head(let response): status = Int(response.status.code)
                case .body(let buffer): try chunk(status, Array(buffer.readableBytesView))
                case .end:
                    try finished(status)
                    return
                }
            }
            throw APIError.internalError("the server closed the connection before answering")
        }
    }

    static func error(from status: JSONValue, status code: Int) -> APIError {
        APIError(code: code, reason: status["reason"]?.stringValue ?? "Unknown", message: status["message"]?.stringValue ?? "HTTP \(code)")
    }

    private static func encode(_ query: [(String, String)]) -> String {
        var allowed = CharacterSet.urlQueryAllowed
        allowed.remove(charactersIn: "&=+,")
        return query.map { "\($0.0)=\($0.1.addingPercentEncoding(withAllowedCharacters: allowed) ?? $0.1)" }.joined(separator: "&")
    }
}

/// Carries a non-escaping callback into `exchange`'s escaping chunk handler, which runs only
/// while the watch call is in progress (on the calling task).
private struct UncheckedBox<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}
