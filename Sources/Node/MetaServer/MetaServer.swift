import Foundation
import KubeModel
import Logging
import ServiceLifecycle
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization
import Transport

/// KubeEdge's MetaServer: a local, read-only, Kubernetes-shaped HTTP API over MetaManager's
/// store (default `127.0.0.1:10550`), so that applications on the node can list, get and watch
/// what the node holds while the cloud is unreachable.
///
/// - `GET` list, get and watch (`?watch=true` or `/watch/…`) for ``Configuration/standardResources``,
///   with label selectors (equality), `metadata.name`/`metadata.namespace` field selectors,
///   `resourceVersion` to resume a watch, `timeoutSeconds`, and bookmarks.
/// - `resourceVersion` is the store's revision of the object's last change, in lists, gets and
///   watch events alike (the cloud's value is what MetaManager compares; clients need values
///   that agree with this server's history). A watch from a revision the history no longer
///   holds gets an `ERROR` event with a 410 `Expired` status, as from the Kubernetes API
///   server, and the client lists again.
/// - Anything else gets a Kubernetes `Status` with the HTTP status: 404 for unknown paths or
///   objects, 400 for bad selectors, 405 for methods other than GET.
public final class MetaServer: Service, Sendable {
    /// Where it listens and its limits.
    public struct Configuration: Sendable {
        /// Default 127.0.0.1 (KubeEdge's; the API is unauthenticated, so keep it local).
        public var host: String
        /// Default 10550; 0 picks a free port.
        public var port: Int
        /// Open connections at most; more are closed at once. Default 128.
        public var maxConnections: Int
        /// The longest a watch runs before the server ends it (clients reconnect). Default 30 min.
        public var maxWatchDuration: Duration
        /// How often a watch that asked for bookmarks gets one. Default 60 s.
        public var bookmarkInterval: Duration
        /// What is served. Default ``standardResources``.
        public var resources: [APIResource]

        /// What MetaServer serves by default, a selection from ``APIResource/standard``: the core
        /// objects a node holds (pods, configmaps, secrets, services, endpoints, nodes) and
        /// KubeEdge's devices and device models.
        public static let standardResources = APIResource.standard.filter { standardStorageNames.contains($0.storageName) }

        private static let standardStorageNames: Set<String> = [
            "pods", "configmaps", "secrets", "services", "endpoints", "nodes",
            "devices.devices.kubeedge.io", "devicemodels.devices.kubeedge.io",
        ]

        public init(
            host: String = "127.0.0.1", port: Int = 10550, maxConnections: Int = 128, maxWatchDuration: Duration = .seconds(1800),
            bookmarkInterval: Duration = .seconds(60), resources: [APIResource] = MetaServer.Configuration.standardResources
        ) {
            self.host = host
            self.port = port
            self.maxConnections = maxConnections
            self.maxWatchDuration = maxWatchDuration
            self.bookmarkInterval = bookmarkInterval
            self.resources = resources
        }
    }

    public let configuration: Configuration
    private let store: MetaStore
    private let group: any EventLoopGroup
    private let logger: Logger
    /// The listener bound and its port, until ``run()`` ends (the server may then run again).
    private let bound = Mutex<(listener: ConnectionServer<HTTPServerRequestPart, HTTPServerResponsePart>, port: Int)?>(nil)
    private let connections = Atomic<Int>(0)

    /// Creates the server; nothing listens before ``bind()`` or ``run()``.
    public init(configuration: Configuration = Configuration(), store: MetaStore, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
                logger: Logger = Logger(label: "metaserver")) {
        self.configuration = configuration
        self.store = store
        self.group = group
        self.logger = logger
    }

    /// Binds the listener (once; later calls return the same port); returns the bound port.
    /// Connections wait for ``run()``.
    @discardableResult
    public func bind() async throws -> Int {
        if let port = bound.withLock({ $0?.port }) { return port }
        let listener = ConnectionServer<HTTPServerRequestPart, HTTPServerResponsePart>()
        let port = try await listener.bind(host: configuration.host, port: configuration.port, group: group) { channel in
            try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
        }
        bound.withLock { $0 = (listener, port) }
        logger.info("MetaServer listening", metadata: ["address": "\(configuration.host):\(port)"])
        return port
    }

    /// Binds (unless ``bind()`` did) and serves until graceful shutdown, cancellation or
    /// ``close()``, which close the listener and every connection and watch; returns once every
    /// connection's task has ended.
    public func run() async throws {
        try await bind()
        guard let listener = bound.withLock({ $0?.listener }) else { return }
        defer { bound.withLock { $0 = nil } }
        await withGracefulShutdownHandler {
            await listener.run { [self] wrapped, channel in
                let count = connections.wrappingAdd(1, ordering: .relaxed).newValue
                defer { connections.wrappingSubtract(1, ordering: .relaxed) }
                guard count <= configuration.maxConnections else {
                    logger.warning("refusing a connection: maxConnections reached", metadata: ["limit": "\(configuration.maxConnections)"])
                    try? await wrapped.executeThenClose { _, _ in }
                    return
                }
                await serve(MetaServerConnection(channel: wrapped, closed: channel.closeFuture))
            }
        } onGracefulShutdown: { [listener] in
            listener.stop()
        }
    }

    /// Stops listening and closes every connection and watch; ``run()`` returns once their
    /// tasks have ended.
    public func close() {
        bound.withLock { $0?.listener }?.stop()
    }

    /// Connections open now.
    public var openConnections: Int { connections.load(ordering: .relaxed) }

    // MARK: serving

    private func serve(_ connection: MetaServerConnection) async {
        do {
            try await connection.channel.executeThenClose { inbound, outbound in
                var head: HTTPRequestHead?
                for try await part in inbound {
                    switch part {
                    case .head(let received): head = received
                    case .body: break
                    case .end:
                        guard let request = head else { continue }
                        head = nil
                        let keepOpen = try await respond(to: request, outbound: outbound, closed: connection.closed)
                        if !keepOpen || !request.isKeepAlive { return }
                    }
                }
            }
        } catch {
            logger.debug("connection ended", metadata: ["error": "\(error)"])
        }
    }

    /// Answers one request; `false` when the connection must close (after a watch).
    private func respond(to head: HTTPRequestHead, outbound: NIOAsyncChannelOutboundWriter<HTTPServerResponsePart>,
                         closed: EventLoopFuture<Void>) async throws -> Bool {
        guard head.method == .GET else {
            try await write(status: 405, reason: "MethodNotAllowed", message: "MetaServer is read-only; \(head.method) is not allowed", to: outbound)
            return true
        }
        if head.uri == "/healthz" || head.uri == "/readyz" || head.uri == "/livez" {
            try await write(.ok, contentType: "text/plain", body: ByteBuffer(string: "ok"), to: outbound)
            return true
        }
        let request: MetaServerRequest
        do {
            request = try MetaServerRequest(uri: head.uri, resources: configuration.resources)
        } catch {
            try await write(status: error.status, reason: error.reason, message: error.message, to: outbound)
            return true
        }
        do {
            if request.watch {
                try await watch(request, outbound: outbound, closed: closed)
                return false
            }
            if let name = request.name {
                try await get(request, name: name, outbound: outbound)
            } else {
                try await list(request, outbound: outbound)
            }
            return true
        } catch let error as MetaError {
            try await write(status: 500, reason: "InternalError", message: error.description, to: outbound)
            return true
        }
    }

    private func get(_ request: MetaServerRequest, name: String, outbound: NIOAsyncChannelOutboundWriter<HTTPServerResponsePart>) async throws {
        let key = ResourceKey(namespace: request.namespace ?? "", type: request.resource.edgeType, name: name)
        guard let object = try await store.get(key), let served = MetaServerJSON.serve(object, as: request.resource) else {
            try await write(status: 404, reason: "NotFound", message: "\(request.resource.plural) \"\(name)\" not found", to: outbound)
            return
        }
        try await write(.ok, contentType: "application/json", body: ByteBuffer(bytes: served.json), to: outbound)
    }

    private func list(_ request: MetaServerRequest, outbound: NIOAsyncChannelOutboundWriter<HTTPServerResponsePart>) async throws {
        let (items, revision) = try await matching(request)
        try await write(.ok, contentType: "application/json", body: MetaServerJSON.list(items, of: request.resource, revision: revision), to: outbound)
    }

    /// The served JSON of the objects `request` selects, and the revision they are current at.
    private func matching(_ request: MetaServerRequest) async throws -> (items: [Data], revision: Int64) {
        let namespace = request.fieldNamespace ?? request.namespace
        if let requested = request.namespace, let field = request.fieldNamespace, requested != field { return ([], store.revision) }
        let (objects, revision) = try await store.list(type: request.resource.edgeType, namespace: namespace)
        let items = objects.compactMap { object -> Data? in
            if let name = request.fieldName, object.key.name != name { return nil }
            guard let served = MetaServerJSON.serve(object, as: request.resource), request.labelSelector.matches(served.labels) else { return nil }
            return served.json
        }
        return (items, revision)
    }

    // MARK: watching

    private enum WatchOutput: Sendable {
        case event(ByteBuffer)
        case bookmark
        case end
    }

    private func watch(_ request: MetaServerRequest, outbound: NIOAsyncChannelOutboundWriter<HTTPServerResponsePart>, closed: EventLoopFuture<Void>) async throws {
        let namespace = request.fieldNamespace ?? request.namespace
        var initial: [Data] = []
        let from: Int64
        switch request.resourceVersion {
        case nil, "0"?:
            // Kubernetes: the current state as ADDED events, then changes.
            (initial, from) = try await matching(request)
        case let text?:
            guard let revision = Int64(text), revision >= 0 else {
                try await write(status: 400, reason: "BadRequest", message: "resourceVersion \"\(text)\" is not one this server issued", to: outbound)
                return
            }
            from = revision
        }
        let events: AsyncStream<MetaEvent>
        var head = HTTPResponseHead(version: .http1_1, status: .ok)
        head.headers.add(name: "Content-Type", value: "application/json")
        head.headers.add(name: "Transfer-Encoding", value: "chunked")
        let started: Result<AsyncStream<MetaEvent>, MetaStoreError>
        do throws(MetaStoreError) {
            started = .success(try await store.watch(type: request.resource.edgeType, namespace: namespace, after: from))
        } catch {
            started = .failure(error)
        }
        switch started {
        case .success(let stream):
            events = stream
        case .failure(.storage(let reason)):
            throw MetaError.storage(reason)
        case .failure(.revisionCompacted(let oldest)):
            try await outbound.write(.head(head))
            let status = MetaServerJSON.status(code: 410, reason: "Expired", message: "too old resource version: \(from) (\(oldest - 1))")
            try await outbound.write(.body(.byteBuffer(MetaServerJSON.event("ERROR", object: status))))
            try await outbound.write(.end(nil))
            return
        }
        try await outbound.write(.head(head))
        for item in initial { try await outbound.write(.body(.byteBuffer(MetaServerJSON.event("ADDED", object: item)))) }

        let (outputs, sink) = AsyncStream<WatchOutput>.makeStream()
        let duration = request.timeoutSeconds.map { min(Duration.seconds($0), configuration.maxWatchDuration) } ?? configuration.maxWatchDuration
        let bookmarkInterval = request.allowBookmarks ? configuration.bookmarkInterval : nil
        let resource = request.resource
        let selector = request.labelSelector
        let fieldName = request.fieldName
        // The client going away ends the watch (a callback: waiting on the future would not end
        // when the watch does).
        closed.whenComplete { _ in sink.yield(.end) }
        try await withThrowingTaskGroup(of: Void.self) { producers in
            producers.addTask {
                for await event in events {
                    if let fieldName, event.object.key.name != fieldName { continue }
                    guard let served = MetaServerJSON.serve(event.object, as: resource), selector.matches(served.labels) else { continue }
                    sink.yield(.event(MetaServerJSON.event(event.kind.rawValue, object: served.json)))
                }
                sink.yield(.end)  // the store cut a slow watcher off: the client watches again
            }
            producers.addTask {
                try? await Task.sleep(for: duration)
                sink.yield(.end)
            }
            if let bookmarkInterval {
                producers.addTask {
                    while !Task.isCancelled {
                        try await Task.sleep(for: bookmarkInterval)
                        sink.yield(.bookmark)
                    }
                }
            }
            defer { producers.cancelAll() }
            for await output in outputs {
                switch output {
                case .event(let line): try await outbound.write(.body(.byteBuffer(line)))
                case .bookmark: try await outbound.write(.body(.byteBuffer(MetaServerJSON.bookmark(of: resource, revision: store.revision))))
                case .end:
                    try? await outbound.write(.end(nil))
                    return
                }
            }
        }
    }

    // MARK: writing

    private func write(status code: Int, reason: String, message: String, to outbound: NIOAsyncChannelOutboundWriter<HTTPServerResponsePart>) async throws {
        let body = ByteBuffer(bytes: MetaServerJSON.status(code: code, reason: reason, message: message))
        try await write(HTTPResponseStatus(statusCode: code), contentType: "application/json", body: body, to: outbound)
    }

    private func write(_ status: HTTPResponseStatus, contentType: String, body: ByteBuffer, to outbound: NIOAsyncChannelOutboundWriter<HTTPServerResponsePart>) async throws {
        var head = HTTPResponseHead(version: .http1_1, status: status)
        head.headers.add(name: "Content-Type", value: contentType)
        head.headers.add(name: "Content-Length", value: "\(body.readableBytes)")
        try await outbound.write(.head(head))
        try await outbound.write(.body(.byteBuffer(body)))
        try await outbound.write(.end(nil))
    }
}

/// One accepted connection and the future that completes when it closes.
struct MetaServerConnection: Sendable {
    let channel: NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>
    let closed: EventLoopFuture<Void>
}
