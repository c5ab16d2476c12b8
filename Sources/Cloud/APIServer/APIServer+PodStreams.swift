import KubeModel
import NIOCore
import NIOHTTP1

extension APIServer {
    /// `GET pods/{name}/log`: the container's log from its node's Edged, as kube-apiserver
    /// passes on kubelet's (`text/plain`, chunked; with `follow` until the container ends or the
    /// client leaves).
    func servePodLog(_ key: ObjectKey, query: [String: String], writer: ResponseWriter, closed: EventLoopFuture<Void>) async throws {
        var options = NodeStreamRequest.LogOptions()
        options.follow = try Self.boolean(query, "follow")
        options.previous = try Self.boolean(query, "previous")
        options.timestamps = try Self.boolean(query, "timestamps")
        options.tailLines = try Self.integer(query, "tailLines")
        options.sinceSeconds = try Self.integer(query, "sinceSeconds")
        options.limitBytes = try Self.integer(query, "limitBytes")
        options.sinceTime = query["sinceTime"]
        var causes: [String] = []
        if let tail = options.tailLines, tail < 0 { causes.append("tailLines: Invalid value: \(tail): must be greater than or equal to 0") }
        if let limit = options.limitBytes, limit < 1 { causes.append("limitBytes: Invalid value: \(limit): must be greater than 0") }
        if let since = options.sinceSeconds, since < 1 { causes.append("sinceSeconds: Invalid value: \(since): must be greater than 0") }
        if options.sinceSeconds != nil, options.sinceTime != nil { causes.append("sinceSeconds: Forbidden: at most one of `sinceTime` or `sinceSeconds` may be specified") }
        if let time = options.sinceTime, RFC3339Time.nanoseconds(time) == nil {
            throw APIError.badRequest("parsing time \"\(time)\" as \"2006-01-02T15:04:05Z07:00\": cannot parse")
        }
        guard causes.isEmpty else {
            throw APIError.invalid("PodLogOptions \"\(key.name)\" is invalid: \(causes.joined(separator: ", "))")
        }
        let (pod, container) = try await podContainer(key, named: query["container"])
        guard let node = pod[path: ["spec", "nodeName"]]?.stringValue, !node.isEmpty else {
            // kube-apiserver has nowhere to send it: an empty log.
            return try await writer.sendText(ByteBuffer())
        }
        var request = NodeStreamRequest(kind: .log, namespace: key.namespace, pod: key.name, uid: pod[path: ["metadata", "uid"]]?.stringValue ?? "", container: container)
        request.log = options
        let opened = try await openNodeStream(request, on: node)
        try await writer.startText()
        try await untilClientLeaves(closed) {
            while let chunk = try await opened.read() { try await writer.outbound.write(.body(.byteBuffer(chunk))) }
        }
        opened.stream.finish()
        try await writer.endStream()
    }

    /// The pod and which of its containers a streaming request means: `named`, or the only
    /// container; errors as kube-apiserver words them.
    func podContainer(_ key: ObjectKey, named: String?) async throws -> (JSONValue, String) {
        guard let pod = try await store.get(ObjectKey(resource: "pods", namespace: key.namespace, name: key.name)) else {
            throw APIError.notFound("pods", key.name)
        }
        let containers = pod[path: ["spec", "containers"]]?.arrayValue?.compactMap { $0["name"]?.stringValue } ?? []
        let initContainers = pod[path: ["spec", "initContainers"]]?.arrayValue?.compactMap { $0["name"]?.stringValue } ?? []
        let ephemeral = pod[path: ["spec", "ephemeralContainers"]]?.arrayValue?.compactMap { $0["name"]?.stringValue } ?? []
        guard let named, !named.isEmpty else {
            if containers.count == 1 { return (pod, containers[0]) }
            var message = "a container name must be specified for pod \(key.name), choose one of: [\(containers.joined(separator: " "))]"
            if !initContainers.isEmpty { message += " or one of the init containers: [\(initContainers.joined(separator: " "))]" }
            throw APIError.badRequest(message)
        }
        guard (containers + initContainers + ephemeral).contains(named) else {
            throw APIError.badRequest("container \(named) is not valid for pod \(key.name)")
        }
        return (pod, named)
    }

    /// A stream to `node`'s Edged for `request`, with Edged's or the hub's refusal as the
    /// `Status` kube-apiserver would answer.
    func openNodeStream(_ request: NodeStreamRequest, on node: String) async throws -> NodeStream {
        guard let opener = nodeStreamOpener.withLock({ $0 }) else {
            throw APIError(code: 503, reason: "ServiceUnavailable", message: "pod streams are not available: cloudcore's hub is not running")
        }
        do {
            return try await opener.open(request, on: node)
        } catch {
            switch error {
            case .offline:
                throw APIError(code: 503, reason: "ServiceUnavailable", message: error.description)
            case .refused(let reply):
                throw APIError(code: reply.code, reason: reply.reason.isEmpty ? "InternalError" : reply.reason, message: reply.message)
            case .failed(let reason):
                throw APIError.internalError(reason)
            }
        }
    }

    /// Runs `body` until it ends or the client's connection closes.
    func untilClientLeaves(_ closed: EventLoopFuture<Void>, _ body: @escaping @Sendable () async throws -> Void) async throws {
        // A future's `get()` cannot be cancelled; a stream's iteration can.
        let (gone, signal) = AsyncStream<Void>.makeStream()
        closed.whenComplete { _ in signal.finish() }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await body() }
            group.addTask { for await _ in gone {} }
            _ = try await group.next()
            group.cancelAll()
        }
    }

    static func boolean(_ query: [String: String], _ name: String) throws(APIError) -> Bool {
        guard let text = query[name] else { return false }
        switch text.lowercased() {
        case "true", "1", "t": return true
        case "false", "0", "f", "": return false
        default: throw APIError.badRequest("strconv.ParseBool: parsing \"\(text)\": invalid syntax")
        }
    }

    static func integer(_ query: [String: String], _ name: String) throws(APIError) -> Int? {
        guard let text = query[name] else { return nil }
        guard let value = Int(text) else { throw APIError.badRequest("strconv.ParseInt: parsing \"\(text)\": invalid syntax") }
        return value
    }
}

extension ResponseWriter {
    /// A whole `text/plain` response.
    func sendText(_ body: ByteBuffer) async throws {
        var head = HTTPResponseHead(version: .http1_1, status: .ok)
        head.headers.add(name: "Content-Type", value: "text/plain")
        head.headers.add(name: "Content-Length", value: "\(body.readableBytes)")
        try await outbound.write(.head(head))
        try await outbound.write(.body(.byteBuffer(body)))
        try await outbound.write(.end(nil))
    }

    /// The head of a chunked `text/plain` response.
    func startText() async throws {
        var head = HTTPResponseHead(version: .http1_1, status: .ok)
        head.headers.add(name: "Content-Type", value: "text/plain")
        head.headers.add(name: "Transfer-Encoding", value: "chunked")
        try await outbound.write(.head(head))
    }
}
