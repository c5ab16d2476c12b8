import Foundation
import KubeModel
import Logging
import ServiceLifecycle
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import Synchronization
import Transport

/// The embedded Kubernetes-compatible API server over an ``ObjectStore``: discovery, create,
/// get, list, watch, update (with `status`) and delete for
/// ``APIResource/standard``, JSON merge patch, strategic merge patch (built-in types) and server-side apply,
/// answering errors as Kubernetes `Status` objects.
///
/// With ``Configuration/security`` it serves HTTPS and authenticates every request (bearer token
/// or client certificate); without, plain HTTP to anyone (tests, loopback only).
/// Watches that ask for them get bookmarks; history is compacted periodically.
/// Server-side apply, `fieldValidation` and `dryRun=All` work as kubectl uses them.
/// Not yet: authorization rules (every authenticated user may do everything).
public final class APIServer: Service, Sendable {
    public struct Configuration: Sendable {
        public var host: String
        /// 0 picks a free port.
        public var port: Int
        /// The largest request body. Default 3 MiB (Kubernetes' limit).
        public var maxBodyBytes: Int
        /// The built-in resources. Default: ``APIResource/standard`` without KubeEdge's kinds, which
        /// come from ``definitions``.
        public var resources: [APIResource]
        /// CustomResourceDefinitions (YAML) installed at start when missing. Default KubeEdge's
        /// (``KubeEdgeDefinitions``).
        public var definitions: [String]
        /// TLS and who may call; `nil` serves plain HTTP to anyone (tests and loopback only).
        public var security: Security?
        /// How often watches that asked for bookmarks get one. Default 60 s.
        public var bookmarkInterval: Duration
        /// How often history beyond the store's limit is compacted. Default 5 min.
        public var compactionInterval: Duration
        /// The most bytes of objects' protobuf messages kept for protobuf lists (see
        /// ``ProtobufMessageCache``); 0 keeps none. Default 64 MiB.
        public var protobufCacheBytes: Int
        /// Whether RBAC decides what authenticated users may do (with ``security``). Default on;
        /// off lets every authenticated user do everything, and exists only to measure what
        /// authorization costs (`api-bench --tls`).
        public var authorization = true
        /// Whether admission runs: service accounts, Pod Security, namespace lifecycle. Default
        /// on; off exists only to measure what admission costs (`api-bench --tls`).
        public var admission = true

        public init(host: String = "127.0.0.1", port: Int = 6443, maxBodyBytes: Int = 3 << 20, resources: [APIResource] = APIResource.builtIn,
                    definitions: [String] = KubeEdgeDefinitions.files.map(\.yaml),
                    security: Security? = nil, bookmarkInterval: Duration = .seconds(60), compactionInterval: Duration = .seconds(300),
                    protobufCacheBytes: Int = 64 << 20) {
            self.protobufCacheBytes = protobufCacheBytes
            self.host = host
            self.port = port
            self.maxBodyBytes = maxBodyBytes
            self.resources = resources
            self.definitions = definitions
            self.security = security
            self.bookmarkInterval = bookmarkInterval
            self.compactionInterval = compactionInterval
        }
    }

    /// HTTPS with authentication and authorization: a bearer token from `tokens`, or a client
    /// certificate the CA in `tls.trustRoots` issued (the user is its common name, its
    /// organization a group); anything else is `401`. What a user may do is what RBAC's Roles
    /// and bindings allow (deny by default, `403`); the bootstrap policy (``BootstrapPolicy``)
    /// is created at start.
    public struct Security: Sendable {
        public var tls: TLSFiles
        /// Bearer token → the user it proves.
        public var tokens: [String: UserInfo]
        /// The key service-account tokens are signed with; `nil` issues none.
        public var serviceAccountSigner: CertificateAuthority?
        /// The CA certificate (PEM) published in every namespace's `kube-root-ca.crt` ConfigMap.
        public var rootCertificate: String

        public init(tls: TLSFiles, tokens: [String: UserInfo], serviceAccountSigner: CertificateAuthority? = nil, rootCertificate: String = "") {
            self.tls = tls
            self.tokens = tokens
            self.serviceAccountSigner = serviceAccountSigner
            self.rootCertificate = rootCertificate
        }

        /// The admin token of `credentials` (its user in `system:masters`, so `cluster-admin`)
        /// and cloudcore's (``KubeEdgePolicy/cloudcoreUser``), serving with its certificate.
        public init(credentials: APIServerCredentials) {
            self.init(tls: credentials.tls, tokens: [
                credentials.adminToken: .authenticated(APIServerCredentials.adminUser, groups: [UserInfo.masters]),
                credentials.cloudcoreToken: .authenticated(KubeEdgePolicy.cloudcoreUser),
                credentials.schedulerToken: .authenticated(PodScheduler.user),
                credentials.controllerManagerToken: .authenticated(ReplicaSetController.user),
            ], serviceAccountSigner: credentials.serviceAccountSigner,
               rootCertificate: (try? String(decoding: credentials.authority.certificate.export(.pem), as: UTF8.self)) ?? "")
        }

        func makeContext() throws -> NIOSSLContext {
            var configuration = TLSConfiguration.makeServerConfiguration(
                certificateChain: try NIOSSLCertificate.fromPEMFile(tls.certificateChain).map { .certificate($0) },
                privateKey: .privateKey(try NIOSSLPrivateKey(file: tls.privateKey, format: .pem)))
            configuration.minimumTLSVersion = .tlsv12
            // Token users present no certificate; certificate users must present a valid one.
            configuration.certificateVerification = .optionalVerification
            configuration.trustRoots = .file(tls.trustRoots)
            return try NIOSSLContext(configuration: configuration)
        }
    }

    public let configuration: Configuration
    public let store: ObjectStore
    /// The built-in resources and those custom resource definitions add.
    let served: ServedResources
    /// Protobuf watch frames shared by the watchers of a change.
    private let watchFrames = WatchFrameCache()
    /// Objects' protobuf messages for protobuf lists.
    let protobufMessages: ProtobufMessageCache
    /// The RBAC policy requests are checked against (with ``Configuration/security``).
    let authorizer = RBACAuthorizer()

    /// The protobuf message cache: objects and bytes held, lookups it answered and not.
    public var protobufCacheFigures: (objects: Int, bytes: Int, hits: Int, misses: Int) { protobufMessages.figures }
    let logger: Logger
    /// The listener bound and its port, until ``run()`` ends (the server may then run again).
    private let bound = Mutex<(listener: ConnectionServer<HTTPServerRequestPart, HTTPServerResponsePart>, port: Int)?>(nil)
    /// Where `pods/log`, `exec`, `attach` and `portforward` go: the nodes' Edged, over the hub.
    let nodeStreamOpener = Mutex<(any NodeStreamOpener)?>(nil)
    /// What the exec, attach and port-forward sessions counted.
    let podStreamCounters = Mutex(PodStreamCounters())

    /// What the exec, attach and port-forward sessions counted, for `/metrics`.
    public var podStreamStatistics: PodStreamCounters { podStreamCounters.withLock { $0 } }

    /// Sets where the pods' streaming subresources (log, exec, attach, portforward) are served:
    /// until it is set, they answer 503.
    public func setNodeStreams(_ opener: any NodeStreamOpener) {
        nodeStreamOpener.withLock { $0 = opener }
    }

    public init(configuration: Configuration = Configuration(), store: ObjectStore, logger: Logger = Logger(label: "apiserver")) {
        self.configuration = configuration
        self.store = store
        protobufMessages = ProtobufMessageCache(byteLimit: configuration.protobufCacheBytes)
        served = ServedResources(builtIn: configuration.resources)
        self.logger = logger
    }

    /// The namespaces a cluster starts with (KubeEdge keeps its own objects in `kubeedge`).
    public static let initialNamespaces = ["default", "kube-system", "kube-public", "kube-node-lease", "kubeedge"]

    /// Creates the initial namespaces that are missing and binds the listener (once; later
    /// calls return the same port); returns the bound port. Connections wait for ``run()``.
    @discardableResult
    public func bind() async throws -> Int {
        if let port = bound.withLock({ $0?.port }) { return port }
        let listener = ConnectionServer<HTTPServerRequestPart, HTTPServerResponsePart>()
        for name in Self.initialNamespaces where try await store.get(ObjectKey(resource: "namespaces", namespace: "", name: name)) == nil {
            _ = try await store.create(ObjectKey(resource: "namespaces", namespace: "", name: name), .object(JSONObject([
                ("apiVersion", .string("v1")), ("kind", .string("Namespace")), ("metadata", .object(JSONObject([("name", .string(name))]))),
                ("status", .object(JSONObject([("phase", .string("Active"))]))),
            ])))
        }
        try await installDefinitions()
        try await refreshCustomResources()
        try await installBootstrapPolicy()
        try await authorizer.reload(from: store)
        for namespace in try await store.list(resource: "namespaces").objects {
            guard let name = namespace[path: ["metadata", "name"]]?.stringValue else { continue }
            // A namespace being deleted gets nothing new; it goes once it is empty.
            if namespace[path: ["metadata", "deletionTimestamp"]] != nil { try await finishNamespaceIfEmpty(name) } else { try await ensureNamespaceDefaults(name) }
        }
        let context = try configuration.security?.makeContext()
        let port = try await listener.bind(host: configuration.host, port: configuration.port) { channel in
            if let context { try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: context)) }
            try HTTPHandlerNames.configure(channel.pipeline.syncOperations)
        }
        bound.withLock { $0 = (listener, port) }
        return port
    }

    /// Binds (unless ``bind()`` did) and serves, with bookmarks and compaction on their
    /// intervals, until graceful shutdown, cancellation or ``close()``; returns once every
    /// connection's task and chore has ended.
    public func run() async throws {
        try await bind()
        guard let listener = bound.withLock({ $0?.listener }) else { return }
        defer { bound.withLock { $0 = nil } }
        await withGracefulShutdownHandler {
            await withDiscardingTaskGroup { chores in
                chores.addTask { [configuration, store] in
                    while (try? await Task.sleep(for: configuration.bookmarkInterval)) != nil { store.sendBookmarks() }
                }
                chores.addTask { [configuration, store, logger] in
                    while (try? await Task.sleep(for: configuration.compactionInterval)) != nil {
                        do { try await store.compact() } catch { logger.error("compaction failed", metadata: ["error": "\(error)"]) }
                    }
                }
                await listener.run { [self] wrapped, channel in
                    await serve(APIConnection(channel: wrapped, nioChannel: channel))
                }
                chores.cancelAll()
            }
        } onGracefulShutdown: { [listener] in
            listener.stop()
        }
    }

    /// Connections open now, and accepted since the listener was bound.
    public var connections: (open: Int, accepted: Int) { bound.withLock { $0?.listener.connections } ?? (0, 0) }

    /// Stops listening and closes every connection and watch; ``run()`` returns once their
    /// tasks have ended.
    public func close() {
        bound.withLock { $0?.listener }?.stop()
    }

    // MARK: connections

    private func serve(_ connection: APIConnection) async {
        try? await connection.channel.executeThenClose { inbound, outbound in
            var head: HTTPRequestHead?
            var body = ByteBuffer()
            var tooLarge = false
            var parts = inbound.makeAsyncIterator()
            while let part = try await parts.next() {
                switch part {
                case .head(let received):
                    head = received
                    body.clear()
                    tooLarge = false
                case .body(var chunk):
                    if body.readableBytes + chunk.readableBytes > configuration.maxBodyBytes { tooLarge = true } else { body.writeBuffer(&chunk) }
                case .end:
                    guard let request = head else { continue }
                    let writer = ResponseWriter(outbound: outbound)
                    if tooLarge {
                        try await writer.send(APIError(code: 413, reason: "RequestEntityTooLarge", message: "the request body is over \(configuration.maxBodyBytes) bytes"))
                    } else if let user = try await authenticate(request, on: connection) {
                        if let route = Self.podStreamRoute(request, resources: served.snapshot.resources) {
                            // exec, attach, portforward: an upgrade that takes the connection over.
                            return try await servePodStream(request, route: route, user: user, writer: writer, inbound: &parts, channel: connection.nioChannel)
                        }
                        if try await !handle(request, body: body, user: user, writer: writer, closed: connection.nioChannel.closeFuture) { return }
                    } else {
                        try await writer.send(APIError(code: 401, reason: "Unauthorized", message: "Unauthorized"))
                    }
                    if !request.isKeepAlive { return }
                }
            }
        }
    }

    /// The user a request comes from: its bearer token's, or its verified client certificate's
    /// (the common name, and the organization as a group); `nil` when it proves nobody.
    /// Without ``Configuration/security`` everyone is `system:anonymous` and nothing is checked.
    private func authenticate(_ head: HTTPRequestHead, on connection: APIConnection) async throws -> UserInfo? {
        guard let security = configuration.security else { return UserInfo(name: "system:anonymous", groups: ["system:unauthenticated"]) }
        if let authorization = head.headers.first(name: "Authorization") {
            guard authorization.hasPrefix("Bearer ") else { return nil }
            let token = String(authorization.dropFirst("Bearer ".count))
            if let user = security.tokens[token] { return user }
            return await serviceAccountUser(token: token, audiences: [ServiceAccountTokens.issuer])
        }
        let der = try? await connection.nioChannel.pipeline.handler(type: NIOSSLServerHandler.self).map { $0.peerCertificate.flatMap { try? $0.toDERBytes() } }.get()
        guard let der, let certificate = try? Certificate(bytes: der, encoding: .der), !certificate.commonName.isEmpty else { return nil }
        return UserInfo.authenticated(certificate.commonName, groups: certificate.organization.isEmpty ? [] : [certificate.organization])
    }

    /// The service account a token this server issued proves, while the token is in its life,
    /// names one of `audiences`, and its service account (and pod, when bound to one) still
    /// exists with the uid it was issued for; `nil` otherwise.
    func serviceAccountUser(token: String, audiences: [String]) async -> UserInfo? {
        guard let signer = configuration.security?.serviceAccountSigner,
              let claims = ServiceAccountTokens(signer: signer).verify(token, now: Date()),
              !Set(claims.audiences).isDisjoint(with: audiences),
              let account = try? await store.get(ObjectKey(resource: "serviceaccounts", namespace: claims.namespace, name: claims.name)),
              account[path: ["metadata", "uid"]]?.stringValue == claims.uid, account[path: ["metadata", "deletionTimestamp"]] == nil
        else { return nil }
        if let pod = claims.pod {
            guard let bound = try? await store.get(ObjectKey(resource: "pods", namespace: claims.namespace, name: pod.name)),
                  bound[path: ["metadata", "uid"]]?.stringValue == pod.uid else { return nil }
        }
        return claims.user
    }

    /// The user the request acts as: `user`, or whom its `Impersonate-User` and
    /// `Impersonate-Group` headers name, when `user` may impersonate them (403 otherwise).
    func effectiveUser(_ head: HTTPRequestHead, _ user: UserInfo) throws(APIError) -> UserInfo {
        guard let name = head.headers.first(name: "Impersonate-User") else {
            guard head.headers.first(name: "Impersonate-Group") == nil else {
                throw APIError(code: 500, reason: "InternalError", message: "Internal error occurred: requested [] without impersonating a user")
            }
            return user
        }
        let groups = head.headers["Impersonate-Group"]
        var asked = [RequestAttributes(verb: "impersonate", apiGroup: "", resource: "users", subresource: "", namespace: "", name: name)]
        let serviceAccount = name.split(separator: ":", omittingEmptySubsequences: false)
        if serviceAccount.count == 4, name.hasPrefix("system:serviceaccount:") {
            asked = [RequestAttributes(verb: "impersonate", apiGroup: "", resource: "serviceaccounts", subresource: "",
                                       namespace: String(serviceAccount[2]), name: String(serviceAccount[3]))]
        }
        asked += groups.map { RequestAttributes(verb: "impersonate", apiGroup: "", resource: "groups", subresource: "", namespace: "", name: $0) }
        if configuration.security != nil, configuration.authorization {
            let policy = authorizer.policy
            if let refused = asked.first(where: { !policy.allows(user, $0) }) { throw refused.forbidden(for: user) }
        }
        return name == "system:anonymous" ? UserInfo(name: name, groups: groups) : UserInfo.authenticated(name, groups: groups)
    }

    /// Refuses (403) what the policy does not allow `user` to do; nothing is checked without
    /// ``Configuration/security``.
    func authorize(_ user: UserInfo, _ request: RequestAttributes) throws(APIError) {
        guard configuration.security != nil, configuration.authorization, !authorizer.policy.allows(user, request) else { return }
        throw request.forbidden(for: user)
    }

    /// Answers one request; `false` when the connection must close (after a watch).
    private func handle(_ head: HTTPRequestHead, body: ByteBuffer, user authenticated: UserInfo, writer: ResponseWriter,
                        closed: EventLoopFuture<Void>) async throws -> Bool {
        // Errors go in the encoding negotiated for the request, once there is one.
        var writer = writer
        let uri = RequestURI(head.uri)
        let path = uri.path
        let query = uri.query
        let user: UserInfo
        let parsed = APIRoute.parse(path: path, resources: served.snapshot.resources)
        do {
            user = try effectiveUser(head, authenticated)
            if case .resource(let route)? = parsed?.path {
                let watch = parsed?.watch == true || query["watch"] == "true" || query["watch"] == "1"
                try authorize(user, RequestAttributes(method: head.method, route: route, watch: watch))
            } else {
                try authorize(user, RequestAttributes(method: head.method, path: path))
            }
        } catch {
            try await writer.send(error)
            return true
        }
        if path == "/openapi/v2" || path == "/openapi/v3" || path.hasPrefix("/openapi/v3/") {
            // JSON only: the OpenAPI documents' protobuf form (gnostic's, which kubectl asks for
            // v2 in) is not served.
            guard APIMediaType.negotiate(accept: head.headers[canonicalForm: "Accept"].map(String.init), protobufAvailable: false) != nil else {
                try await writer.send(APIMediaType.notAcceptable(protobufAvailable: false))
                return true
            }
            let openAPI = served.snapshot.openAPI
            let document = switch path {
            case "/openapi/v2": openAPI.documentV2
            case "/openapi/v3": openAPI.index
            default: openAPI.document(String(path.dropFirst("/openapi/v3/".count)))
            }
            if let document { try await writer.send(document) } else {
                try await writer.send(APIError(code: 404, reason: "NotFound", message: "no OpenAPI document at \(path)"))
            }
            return true
        }
        guard let (target, watchPath) = parsed else {
            try await writer.send(APIError(code: 404, reason: "NotFound", message: "the server could not find the requested resource"))
            return true
        }
        do {
            switch target {
            case .version: try await writer.send(served.snapshot.discovery.version)
            case .coreVersions: try await writer.send(served.snapshot.discovery.coreVersions)
            case .groups: try await writer.send(served.snapshot.discovery.groups)
            case .resourceList(let group, let version):
                guard let list = served.snapshot.discovery.resourceList(group: group, version: version) else {
                    throw APIError(code: 404, reason: "NotFound", message: "the server could not find the requested resource")
                }
                try await writer.send(list)
            case .resource(let route):
                let watch = watchPath || query["watch"] == "true" || query["watch"] == "1"
                let selection = try Selection(query)
                let protobufAvailable = KubeProtobuf.builtIn.messageName(apiVersion: route.resource.groupVersion, kind: route.resource.kind) != nil
                guard let encoding = APIMediaType.negotiate(accept: head.headers[canonicalForm: "Accept"].map(String.init), protobufAvailable: protobufAvailable) else {
                    throw APIMediaType.notAcceptable(protobufAvailable: protobufAvailable)
                }
                writer.encoding = encoding
                // Reviews are only ever created: nothing to read, list or watch.
                if route.resource.createOnly, head.method != .POST || route.name != nil {
                    throw APIError(code: 405, reason: "MethodNotAllowed", message: "the server does not allow this method on the requested resource")
                }
                if watch, head.method == .GET {
                    try await self.watch(route, selection, from: query["resourceVersion"], timeoutSeconds: query["timeoutSeconds"].flatMap { Int($0) },
                                         bookmarks: query["allowWatchBookmarks"] == "true", writer: writer, closed: closed)
                    return false
                }
                let table = head.headers[canonicalForm: "Accept"].contains(where: { $0.contains("as=Table") })
                let custom = served.snapshot.isCustom(route.resource)
                if head.method == .GET, route.key == nil, !table, !custom {
                    if encoding == .protobuf, let list = try await protobufList(route, selection) {
                        try await writer.send(protobuf: list)
                    } else {
                        try await writer.send(encoded: try await encodedList(route, selection))
                    }
                    return true
                }
                if route.subresource == "binding", let key = route.key {
                    guard head.method == .POST else {
                        throw APIError(code: 405, reason: "MethodNotAllowed", message: "the server does not allow this method on the requested resource")
                    }
                    try await bind(key, binding: try Self.decodeBody(body, contentType: head.headers.first(name: "Content-Type") ?? "", resource: route.resource))
                    try await writer.send(.object(JSONObject([
                        ("kind", .string("Status")), ("apiVersion", .string("v1")), ("metadata", .object(JSONObject())), ("status", .string("Success")), ("code", .integer(201)),
                    ])), status: .created)
                    return true
                }
                if route.subresource == "eviction", let key = route.key {
                    guard head.method == .POST else {
                        throw APIError(code: 405, reason: "MethodNotAllowed", message: "the server does not allow this method on the requested resource")
                    }
                    try await evict(key, eviction: try JSONValue(parsing: body.readableBytesView))
                    try await writer.send(.object(JSONObject([
                        ("kind", .string("Status")), ("apiVersion", .string("v1")), ("metadata", .object(JSONObject())), ("status", .string("Success")), ("code", .integer(201)),
                    ])), status: .created)
                    return true
                }
                if route.subresource == "log", let key = route.key {
                    guard head.method == .GET else {
                        throw APIError(code: 405, reason: "MethodNotAllowed", message: "the server does not allow this method on the requested resource")
                    }
                    try await servePodLog(key, query: query, writer: writer, closed: closed)
                    return true
                }
                if route.subresource == "token" {
                    guard head.method == .POST else {
                        throw APIError(code: 405, reason: "MethodNotAllowed", message: "the server does not allow this method on the requested resource")
                    }
                    let request = try JSONValue(parsing: body.readableBytesView)
                    try await writer.send(try await requestToken(route, request: request), status: .created)
                    return true
                }
                if route.resource.createOnly, route.resource.plural == "tokenreviews", head.method == .POST {
                    let request = try Self.decodeBody(body, contentType: head.headers.first(name: "Content-Type") ?? "", resource: route.resource)
                    try await writer.send(try await reviewToken(request), status: .created)
                    return true
                }
                if route.resource.createOnly {
                    let review = try AccessReview.answer(try Self.decodeBody(body, contentType: head.headers.first(name: "Content-Type") ?? "", resource: route.resource),
                                                         resource: route.resource, namespace: route.namespace, user: user, policy: authorizer.policy)
                    try await writer.send(review, status: .created)
                    return true
                }
                var warnings: [String] = []
                var (status, object) = try await perform(head.method, route, selection, body: body, contentType: head.headers.first(name: "Content-Type") ?? "",
                                                   query: query, warnings: &warnings)
                if head.method != .GET, RBACAuthorizer.storageNames.contains(route.resource.storageName) { try await authorizer.reload(from: store) }
                // An update that let the last finalizer go may have emptied a namespace being deleted.
                if head.method == .PUT || head.method == .PATCH, let namespace = route.key?.namespace, !namespace.isEmpty,
                   object[path: ["metadata", "deletionTimestamp"]] != nil {
                    try await finishNamespaceIfEmpty(namespace)
                }
                if head.method == .POST, route.resource.storageName == "namespaces", status == .created,
                   let name = object[path: ["metadata", "name"]]?.stringValue, (try? Self.isDryRun(query)) != true {
                    try await ensureNamespaceDefaults(name)
                }
                if custom { object = Self.converted(object, to: route.resource) }
                if route.resource.storageName == Self.definitions.storageName, head.method != .GET {
                    let dryRun = (try? Self.isDryRun(query)) == true
                        || ((try? JSONValue(parsing: body.readableBytesView))?["dryRun"]?.arrayValue?.contains(.string("All")) ?? false)
                    if head.method == .DELETE, let name = route.key?.name, !dryRun { try await deleteCustomResources(of: object, definition: name) }
                    try await refreshCustomResources()
                }
                if head.method == .GET, table {
                    let items = route.key == nil ? object["items"]?.arrayValue ?? [] : [object]
                    let revision = object[path: ["metadata", "resourceVersion"]]?.stringValue.flatMap { Int64($0) }
                    try await writer.send(APITable.table(items, resource: route.resource, revision: revision,
                                                         printerColumns: served.snapshot.printerColumns(of: route.resource)), status: status)
                } else {
                    try await writer.send(object, status: status, warnings: warnings)
                }
            }
        } catch let error as APIError {
            try await writer.send(error)
        } catch let error as JSONParseError {
            try await writer.send(APIError.badRequest("the request body is not JSON: \(error)"))
        }
        return true
    }

    // MARK: operations

    private func perform(_ method: HTTPMethod, _ route: APIRoute, _ selection: Selection, body: ByteBuffer, contentType: String,
                         query: [String: String], warnings: inout [String]) async throws -> (HTTPResponseStatus, JSONValue) {
        let resource = route.resource
        // `dryRun=All`: every check, nothing stored (kubectl --dry-run=server).
        let dryRun = try Self.isDryRun(query)
        /// Unknown fields in what is written (not in status updates): refused or warned of.
        func validate(_ object: JSONValue) throws {
            guard route.subresource == nil else { return }
            warnings += try FieldValidation(query: query).check(object, kind: resource.kind, version: resource.version)
        }
        /// A custom resource as its definition's schema has it: pruned, defaulted, validated.
        let schema = served.snapshot.schema(of: resource)
        func admit(_ object: inout JSONValue) throws {
            let finalizers = NameValidation.finalizerProblems(in: object)
            if !finalizers.errors.isEmpty {
                throw Self.invalid(finalizers.errors, resource: resource, name: object[path: ["metadata", "name"]]?.stringValue ?? route.name ?? "")
            }
            warnings += finalizers.warnings
            if resource.storageName == Self.definitions.storageName {
                let errors = DefinitionCheck.errors(in: object)
                if !errors.isEmpty { throw Self.invalid(errors, resource: resource, name: object[path: ["metadata", "name"]]?.stringValue ?? "") }
            }
            guard let schema else { return try validate(object) }
            // Unknown fields are refused or warned of as `fieldValidation` says, then pruned.
            if route.subresource == nil {
                warnings += try FieldValidation(query: query).report(schema.unknownFields(in: object), kind: resource.kind, version: resource.version)
            }
            try conform(&object)
        }
        /// A custom resource pruned, defaulted and validated against its schema.
        func conform(_ object: inout JSONValue) throws {
            guard let schema else { return }
            object = schema.defaulted(schema.pruned(object))
            let errors = schema.errors(in: object)
            guard !errors.isEmpty else { return }
            throw Self.invalid(errors, resource: resource, name: object[path: ["metadata", "name"]]?.stringValue ?? "")
        }
        if route.subresource == "scale", let key = route.key, let scale = served.snapshot.scale(of: resource) {
            return try await self.scale(method, key: key, resource: resource, paths: scale, body: body, contentType: contentType, dryRun: dryRun)
        }
        switch (method, route.key) {
        case (.GET, nil):
            let (all, revision) = try await store.list(resource: resource.storageName, namespace: route.namespace)
            let objects = all.filter(selection.matches)
            return (.ok, .object(JSONObject([
                ("kind", .string("\(resource.kind)List")), ("apiVersion", .string(resource.groupVersion)),
                ("metadata", .object(JSONObject([("resourceVersion", .string(String(revision)))]))), ("items", .array(objects)),
            ])))
        case (.GET, let key?):
            guard let object = try await store.get(key) else { throw APIError.notFound(resource.plural, key.name) }
            return (.ok, object)
        case (.POST, nil):
            var object = try Self.decodeBody(body, contentType: contentType, resource: resource)
            try admit(&object)
            let key = try identify(&object, route: route)
            // Names are checked on create (a CRD's has its own rule); the server makes the uid.
            if resource.storageName != Self.definitions.storageName {
                let problems = NameValidation.problems(key.name, for: resource)
                guard problems.isEmpty else { throw NameValidation.invalid(key.name, problems: problems, resource: resource) }
            }
            // The server makes the uid (here, so that a Job's generated selector can name it).
            object.set(.string(UUID().uuidString.lowercased()), at: ["metadata", "uid"])
            try Self.checkWorkload(&object, resource: resource, old: nil)
            if resource.group.isEmpty, resource.kind == "Pod" {
                let admitted = try await admitNewPod(PodDefaults.onCreate(object), key: key)
                object = admitted.pod
                warnings += admitted.warnings
            } else if resource.namespaced {
                try await refuseIfTerminating(key.namespace)
            }
            if resource.storageName == Self.definitions.storageName { object = Self.establishing(object) }
            // The namespace is checked in the create's own transaction.
            let created = try await store.create(key, object, dryRun: dryRun, requiringNamespace: resource.namespaced)
            if !dryRun { try await collectIfOwnersAreGone(key, created) }
            return (.created, created)
        case (.PUT, let key?):
            var object = try Self.decodeBody(body, contentType: contentType, resource: resource)
            try admit(&object)
            _ = try identify(&object, route: route)
            if route.subresource == "status" {
                guard var current = try await store.get(key) else { throw APIError.notFound(resource.plural, key.name) }
                current["status"] = object["status"]
                current.set(object[path: ["metadata", "resourceVersion"]], at: ["metadata", "resourceVersion"])
                return (.ok, try await store.update(key, current, dryRun: dryRun))
            }
            if Self.hasWorkloadRules(resource) { try Self.checkWorkload(&object, resource: resource, old: try await store.get(key)) }
            if resource.group.isEmpty, resource.kind == "Pod" { warnings += try await admitPodSecurity(object, key: key) }
            return (.ok, try await store.update(key, object, dryRun: dryRun))
        case (.PATCH, let key?) where contentType.hasPrefix("application/apply-patch+yaml"):
            return try await serverSideApply(route, key: key, body: body, query: query, dryRun: dryRun, validate: admit, conform: conform)
        case (.PATCH, let key?):
            let strategic = contentType.hasPrefix("application/strategic-merge-patch+json")
            let jsonPatch = contentType.hasPrefix("application/json-patch+json")
            guard strategic || jsonPatch || contentType.hasPrefix("application/merge-patch+json") else {
                throw APIError(code: 415, reason: "UnsupportedMediaType",
                               message: "the patch type \(contentType) is not supported: use json, merge, strategic or apply (server-side)")
            }
            if strategic, served.snapshot.isCustom(resource) {
                // As the Kubernetes API server answers for custom resources.
                throw APIError(code: 415, reason: "UnsupportedMediaType", message: "strategic merge patch is not supported for \(resource.kind); use --type merge")
            }
            let parsedPatch = try JSONValue(parsing: body.readableBytesView)
            // A patch that names no resourceVersion applies to whatever is stored: a concurrent
            // write is not a conflict, the patch is applied again to the newer object, as
            // kube-apiserver retries it.
            var attempt = 0
            while true {
                attempt += 1
                guard let current = try await store.get(key) else { throw APIError.notFound(resource.plural, key.name) }
                var patch = parsedPatch
                var patched: JSONValue
                if jsonPatch {
                    patched = try Self.applyJSONPatch(patch, to: current, subresource: route.subresource)
                } else {
                    if route.subresource == "status" { patch = .object(JSONObject([("status", patch["status"] ?? .null)])) }
                    patched = strategic ? StrategicMergePatch.apply(patch, to: current) : current.applyingMergePatch(patch)
                }
                let versioned = !jsonPatch && patch[path: ["metadata", "resourceVersion"]] != nil
                if !versioned { patched.set(current[path: ["metadata", "resourceVersion"]], at: ["metadata", "resourceVersion"]) }
                try admit(&patched)
                _ = try identify(&patched, route: route)
                if route.subresource == nil { try Self.checkWorkload(&patched, resource: resource, old: current) }
                if resource.group.isEmpty, resource.kind == "Pod", route.subresource == nil { warnings += try await admitPodSecurity(patched, key: key) }
                let updated: JSONValue
                do {
                    updated = try await store.update(key, patched, dryRun: dryRun)
                } catch {
                    if error.code == 409, !versioned, attempt < 5 { continue }
                    throw error
                }
                return (.ok, updated)
            }
        case (.DELETE, let key?):
            // DeleteOptions may come in the body (kubectl sends dryRun and preconditions there).
            let options = body.readableBytes > 0 ? try JSONValue(parsing: body.readableBytesView) : JSONValue.null
            let dryRunInBody = options["dryRun"]?.arrayValue?.contains(.string("All")) ?? false
            if let uid = options[path: ["preconditions", "uid"]]?.stringValue, !uid.isEmpty,
               let current = try await store.get(key), current[path: ["metadata", "uid"]]?.stringValue != uid {
                throw APIError(code: 409, reason: "Conflict", message: "Precondition failed: UID in precondition: \(uid), UID in object meta: "
                               + (current[path: ["metadata", "uid"]]?.stringValue ?? ""))
            }
            let resourceVersion = options[path: ["preconditions", "resourceVersion"]]?.stringValue
            let policy = try Self.propagation(options: options, query: query)
            let grace = try Self.requestedGracePeriod(options: options, query: query)
            if dryRun || dryRunInBody { return (.ok, try await store.delete(key, resourceVersion: resourceVersion, dryRun: true)) }
            let deleted = try await deleteCollecting(key, resourceVersion: resourceVersion, policy: policy, gracePeriod: grace)
            if !key.namespace.isEmpty { try await finishNamespaceIfEmpty(key.namespace) }
            return (.ok, deleted)
        default:
            throw APIError(code: 405, reason: "MethodNotAllowed", message: "\(method) is not allowed on \(route.key == nil ? "a collection" : "an object")")
        }
    }

    /// A JSON patch applied as kube-apiserver applies one: a malformed patch is a 400, one that
    /// does not apply a 422; on `status` only the status it makes is kept.
    private static func applyJSONPatch(_ document: JSONValue, to current: JSONValue, subresource: String?) throws(APIError) -> JSONValue {
        do {
            var patched = try JSONPatch(document).applied(to: current)
            if subresource == "status" {
                var kept = current
                kept["status"] = patched["status"]
                patched = kept
            }
            return patched
        } catch {
            if error.isMalformed { throw APIError.badRequest(error.description) }
            throw APIError(code: 422, reason: "Invalid", message: error.description)
        }
    }

    /// DeleteOptions' `gracePeriodSeconds` (body, then query), if given.
    private static func requestedGracePeriod(options: JSONValue, query: [String: String]) throws(APIError) -> Int64? {
        if let value = options["gracePeriodSeconds"], value != .null {
            guard let seconds = value.int64Value else { throw APIError.badRequest("gracePeriodSeconds must be an integer") }
            return seconds
        }
        guard let text = query["gracePeriodSeconds"] else { return nil }
        guard let seconds = Int64(text) else { throw APIError.badRequest("gracePeriodSeconds \(text) is not an integer") }
        return seconds
    }

    private static func isDryRun(_ query: [String: String]) throws(APIError) -> Bool {
        switch query["dryRun"] {
        case nil, "": return false
        case "All": return true
        case let other?: throw APIError.badRequest("dryRun \(other) is not supported: use All")
        }
    }

    /// Server-side apply: the body (JSON or YAML) is the manager's configuration; it creates the
    /// object when absent. `fieldManager` is required; `force=true` takes conflicting fields.
    private func serverSideApply(_ route: APIRoute, key: ObjectKey, body: ByteBuffer, query: [String: String], dryRun: Bool,
                                 validate: (inout JSONValue) throws -> Void,
                                 conform: (inout JSONValue) throws -> Void) async throws -> (HTTPResponseStatus, JSONValue) {
        guard let manager = query["fieldManager"], !manager.isEmpty else {
            throw APIError.badRequest("PATCH with application/apply-patch+yaml requires the fieldManager parameter")
        }
        var configuration: JSONValue
        do {
            configuration = try JSONValue(parsing: body.readableBytesView)
        } catch {
            do {
                configuration = try YAMLDocument.parse(String(buffer: body))
            } catch {
                throw APIError.badRequest(error.description)
            }
        }
        try validate(&configuration)
        _ = try identify(&configuration, route: route)
        let resource = route.resource
        let strategic = !served.snapshot.isCustom(resource)
        let live = try await store.get(key)
        if live == nil, resource.namespaced, try await store.get(ObjectKey(resource: "namespaces", namespace: "", name: key.namespace)) == nil {
            throw APIError(code: 404, reason: "NotFound", message: "namespaces \"\(key.namespace)\" not found")
        }
        var applied: JSONValue
        do {
            applied = try ServerSideApply.apply(configuration, to: live, manager: manager, force: query["force"] == "true", strategic: strategic,
                                                time: ObjectStore.now())
        } catch {
            throw APIError(code: 409, reason: "Conflict", message: error.description)
        }
        // Identity as the URL says; the stored object's version, so a concurrent write conflicts.
        _ = try identify(&applied, route: route)
        // What the merge made, as a custom resource's schema has it.
        try conform(&applied)
        let isPod = resource.group.isEmpty && resource.kind == "Pod"
        guard let live else {
            // A create, checked as one: the name, the server's uid, Pod Security.
            let problems = NameValidation.problems(key.name, for: resource)
            guard problems.isEmpty else { throw NameValidation.invalid(key.name, problems: problems, resource: resource) }
            applied.set(.string(UUID().uuidString.lowercased()), at: ["metadata", "uid"])
            try Self.checkWorkload(&applied, resource: resource, old: nil)
            if isPod {
                applied = try await admitNewPod(PodDefaults.onCreate(applied), key: key).pod
            }
            applied.set(nil, at: ["metadata", "resourceVersion"])
            return (.created, try await store.create(key, applied, dryRun: dryRun))
        }
        try Self.checkWorkload(&applied, resource: resource, old: live)
        if isPod { _ = try await admitPodSecurity(applied, key: key) }
        applied["status"] = live["status"]
        applied.set(live[path: ["metadata", "resourceVersion"]], at: ["metadata", "resourceVersion"])
        return (.ok, try await store.update(key, applied, dryRun: dryRun))
    }

    /// A list as JSON built from the stored bytes of the objects it selects: objects are parsed
    /// only to match a selector, and never serialised again.
    // MARK: custom resources

    /// `{name}/scale` of a custom resource: an `autoscaling/v1` `Scale` read from, and written to,
    /// the paths its definition names (`.spec.replicas`, `.status.replicas`, a selector).
    private func scale(_ method: HTTPMethod, key: ObjectKey, resource: APIResource, paths: JSONValue, body: ByteBuffer, contentType: String,
                       dryRun: Bool) async throws -> (HTTPResponseStatus, JSONValue) {
        func steps(_ name: String) -> [String] { (paths[name]?.stringValue ?? "").split(separator: ".").map(String.init) }
        guard var object = try await store.get(key) else { throw APIError.notFound("\(resource.plural).\(resource.group)", key.name) }
        func scaleObject(_ object: JSONValue) -> JSONValue {
            var status = JSONObject([("replicas", object[path: steps("statusReplicasPath")] ?? .integer(0))])
            if let selector = object[path: steps("labelSelectorPath")] {
                // A built-in kind's selector is an object; Scale carries its string form.
                if case .object = selector, let parsed = try? LabelSelector(json: selector) {
                    status["selector"] = .string(parsed.text)
                } else {
                    status["selector"] = selector
                }
            }
            return .object(JSONObject([
                ("kind", .string("Scale")), ("apiVersion", .string("autoscaling/v1")),
                ("metadata", .object(JSONObject([("name", object[path: ["metadata", "name"]] ?? .null), ("namespace", object[path: ["metadata", "namespace"]] ?? .null),
                                                 ("uid", object[path: ["metadata", "uid"]] ?? .null),
                                                 ("resourceVersion", object[path: ["metadata", "resourceVersion"]] ?? .null)]))),
                ("spec", .object(JSONObject([("replicas", object[path: steps("specReplicasPath")] ?? .integer(0))]))),
                ("status", .object(status)),
            ]))
        }
        switch method {
        case .GET:
            return (.ok, scaleObject(object))
        case .PUT, .PATCH:
            let input = try JSONValue(parsing: body.readableBytesView)
            let wanted = method == .PUT ? input : scaleObject(object).applyingMergePatch(input)
            guard let replicas = wanted[path: ["spec", "replicas"]], replicas.int64Value != nil else {
                throw APIError.badRequest("the Scale has no spec.replicas")
            }
            object.set(replicas, at: steps("specReplicasPath"))
            if let version = input[path: ["metadata", "resourceVersion"]] { object.set(version, at: ["metadata", "resourceVersion"]) }
            return (.ok, scaleObject(try await store.update(key, object, dryRun: dryRun)))
        default:
            throw APIError(code: 405, reason: "MethodNotAllowed", message: "\(method) is not allowed on a scale")
        }
    }

    /// kube-apiserver's 422 for field errors: `Kind.group "name" is invalid: …`, with the
    /// causes in the details (which kubectl prints).
    static func invalid(_ errors: [StructuralSchema.FieldError], resource: APIResource, name: String) -> APIError {
        let qualified = resource.group.isEmpty ? resource.kind : "\(resource.kind).\(resource.group)"
        let listed = errors.count == 1 ? errors[0].message : "[" + errors.map(\.message).joined(separator: ", ") + "]"
        let causes = errors.map { error in
            JSONValue.object(JSONObject([("reason", .string(error.kind.rawValue)), ("message", .string(String(error.message.dropFirst(error.field.count + 2)))),
                                         ("field", .string(error.field))]))
        }
        let details = JSONValue.object(JSONObject([("name", .string(name)), ("group", .string(resource.group)), ("kind", .string(resource.kind)),
                                                   ("causes", .array(causes))]))
        return APIError(code: 422, reason: "Invalid", message: "\(qualified) \"\(name)\" is invalid: \(listed)", details: details)
    }

    static let definitions = APIResource.standard.first { $0.plural == "customresourcedefinitions" }!

    /// A custom resource (or a list of them) as the version it is read through names it: the
    /// versions of a definition share their storage and convert with `None` (only `apiVersion`
    /// changes), as Kubernetes does for such definitions.
    static func converted(_ value: JSONValue, to resource: APIResource) -> JSONValue {
        var value = value
        if value["kind"]?.stringValue == resource.kind { value["apiVersion"] = .string(resource.groupVersion) }
        if let items = value["items"]?.arrayValue {
            value["apiVersion"] = .string(resource.groupVersion)
            value["items"] = .array(items.map { converted($0, to: resource) })
        }
        return value
    }

    /// Stores the configured definitions that are missing (established at once); a stored one
    /// is left as it is (a user may have changed it).
    private func installDefinitions() async throws {
        for yaml in configuration.definitions {
            let definition = try YAMLDocument.parse(yaml)
            guard let name = definition[path: ["metadata", "name"]]?.stringValue else { continue }
            let key = ObjectKey(resource: Self.definitions.storageName, namespace: "", name: name)
            guard try await store.get(key) == nil else { continue }
            let errors = DefinitionCheck.errors(in: definition)
            guard errors.isEmpty else { throw Self.invalid(errors, resource: Self.definitions, name: name) }
            _ = try await store.create(key, Self.establishing(definition))
        }
    }

    /// Stores the bootstrap ClusterRoles and ClusterRoleBindings, and cloudcore's
    /// (``KubeEdgePolicy``), that are missing; a stored one is left as it is.
    private func installBootstrapPolicy() async throws {
        let documents = BootstrapPolicy.clusterRoles + BootstrapPolicy.clusterRoleBindings
            + KubeEdgePolicy.manifest.components(separatedBy: "\n---\n").filter { !$0.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty }
        for yaml in documents {
            let object = try YAMLDocument.parse(yaml)
            guard let name = object[path: ["metadata", "name"]]?.stringValue, let kind = object["kind"]?.stringValue else { continue }
            let key = ObjectKey(resource: kind.lowercased() + "s.rbac.authorization.k8s.io", namespace: "", name: name)
            if try await store.get(key) == nil { _ = try await store.create(key, object) }
        }
    }

    /// Serves what the stored CustomResourceDefinitions define.
    private func refreshCustomResources() async throws {
        served.update(definitions: try await store.list(resource: Self.definitions.storageName).objects)
    }

    /// A definition as stored on create: its names accepted and the definition established
    /// (kube-apiserver's controllers set both at once for names that do not clash).
    static func establishing(_ definition: JSONValue) -> JSONValue {
        var definition = definition
        let now = ObjectStore.now()
        let conditions: [JSONValue] = [("NamesAccepted", "no conflicts found", "NoConflicts"), ("Established", "the initial names have been accepted", "InitialNamesAccepted")]
            .map { type, message, reason in
                .object(JSONObject([("type", .string(type)), ("status", .string("True")), ("lastTransitionTime", .string(now)),
                                    ("reason", .string(reason)), ("message", .string(message))]))
            }
        let storedVersions = (definition[path: ["spec", "versions"]]?.arrayValue ?? []).filter { $0["storage"]?.boolValue == true }.compactMap { $0["name"] }
        definition["status"] = .object(JSONObject([
            ("conditions", .array(conditions)), ("acceptedNames", definition[path: ["spec", "names"]] ?? .object(JSONObject())),
            ("storedVersions", .array(storedVersions)),
        ]))
        return definition
    }

    /// Deletes every object of a deleted definition (all versions share its storage).
    private func deleteCustomResources(of definition: JSONValue, definition name: String) async throws {
        guard let resource = ServedResources.resources(of: definition).first else { return }
        var deleted = 0
        var failed = 0
        for object in try await store.list(resource: resource.storageName).objects {
            guard let objectName = object[path: ["metadata", "name"]]?.stringValue else { continue }
            let key = ObjectKey(resource: resource.storageName, namespace: object[path: ["metadata", "namespace"]]?.stringValue ?? "", name: objectName)
            do {
                _ = try await store.delete(key)
                deleted += 1
            } catch where error.code == 404 {
                // Deleted meanwhile by someone else.
            } catch {
                failed += 1
                logger.error("could not delete an object of a deleted custom resource definition",
                             metadata: ["definition": "\(name)", "object": "\(key)", "error": "\(error.message)"])
            }
        }
        logger.info("deleted the objects of a custom resource definition", metadata: ["definition": "\(name)", "deleted": "\(deleted)", "failed": "\(failed)"])
    }

    /// A create's or update's body as JSON: JSON as it is, or Kubernetes protobuf (built-in
    /// kinds) transcoded, its API version checked against the URL's.
    private static func decodeBody(_ body: ByteBuffer, contentType: String, resource: APIResource) throws -> JSONValue {
        guard APIMediaType.isProtobuf(contentType: contentType) else { return try JSONValue(parsing: body.readableBytesView) }
        guard KubeProtobuf.builtIn.messageName(apiVersion: resource.groupVersion, kind: resource.kind) != nil else {
            throw APIError(code: 415, reason: "UnsupportedMediaType",
                           message: "the body of a request for \(resource.plural) must be JSON: \(resource.kind) has no protobuf form")
        }
        let object: JSONValue
        do {
            object = try KubeProtobuf.builtIn.decodeObject(Array(body.readableBytesView))
        } catch {
            throw APIError.badRequest("the request body is not a Kubernetes protobuf object: \(error)")
        }
        // A kind that does not belong at the URL is refused by `identify`, as for JSON.
        let apiVersion = object["apiVersion"]?.stringValue ?? ""
        guard apiVersion == resource.groupVersion else {
            throw APIError.badRequest("the API version in the data (\(apiVersion)) does not match the expected API version (\(resource.groupVersion))")
        }
        return object
    }

    private func encodedList(_ route: APIRoute, _ selection: Selection) async throws(APIError) -> [UInt8] {
        let resource = route.resource
        let nodeName = selection.fields.requiredValues["spec.nodeName"]
        var (objects, revision) = try await store.listEncoded(resource: resource.storageName, namespace: route.namespace, nodeName: nodeName)
        if !selection.selectsEverything {
            objects = objects.filter { encoded in (try? JSONValue(parsing: encoded)).map(selection.matches) ?? false }
        }
        var out: [UInt8] = []
        out.reserveCapacity(objects.reduce(128) { $0 + $1.count + 1 })
        out += #"{"kind":"\#(resource.kind)List","apiVersion":"\#(resource.groupVersion)","metadata":{"resourceVersion":"\#(revision)"},"items":["#.utf8
        for (index, object) in objects.enumerated() {
            if index > 0 { out.append(UInt8(ascii: ",")) }
            out += object
        }
        out += "]}".utf8
        return out
    }

    /// A list in Kubernetes protobuf, its items' messages from ``protobufMessages`` where it
    /// holds them at their revision; `nil` when an item has no protobuf form (the list then
    /// goes as JSON).
    private func protobufList(_ route: APIRoute, _ selection: Selection) async throws(APIError) -> [UInt8]? {
        let resource = route.resource
        let nodeName = selection.fields.requiredValues["spec.nodeName"]
        var (objects, revision) = try await store.listStored(resource: resource.storageName, namespace: route.namespace, nodeName: nodeName)
        var parsed: [String: JSONValue] = [:]
        if !selection.selectsEverything {
            objects = objects.filter { object in
                guard let value = try? JSONValue(parsing: object.value), selection.matches(value) else { return false }
                parsed[object.key] = value
                return true
            }
        }
        let protobuf = KubeProtobuf.builtIn
        let items: [[UInt8]]
        do {
            items = try protobufMessages.messages(for: objects) { object throws(ProtobufEncodingError) in
                guard let value = parsed[object.key] ?? (try? JSONValue(parsing: object.value)) else {
                    throw ProtobufEncodingError(reason: "stored object \(object.key) is not JSON")
                }
                guard let message = try protobuf.itemMessage(value, apiVersion: resource.groupVersion, kind: resource.kind) else {
                    throw ProtobufEncodingError(reason: "\(resource.kind) has no protobuf form")
                }
                return message
            }
        } catch {
            return nil
        }
        return protobuf.encodeList(apiVersion: resource.groupVersion, kind: resource.kind, resourceVersion: String(revision), items: items)
    }

    /// `POST pods/{name}/binding`: assigns the pod to the Binding's `target` node, as
    /// kube-apiserver does for a scheduler: only once (409 when the pod is bound already), and
    /// not for a pod being deleted.
    /// `pods/{name}/eviction`: the pod deleted as its Eviction's `deleteOptions` say (grace
    /// period, uid precondition), gracefully when it runs on a node. No PodDisruptionBudget is
    /// served, so none can refuse it.
    private func evict(_ key: ObjectKey, eviction: JSONValue) async throws {
        if let name = eviction[path: ["metadata", "name"]]?.stringValue, !name.isEmpty, name != key.name {
            throw APIError.badRequest("name in URL does not match name in Eviction object")
        }
        guard let pod = try await store.get(key) else { throw APIError.notFound("pods", key.name) }
        let options = eviction["deleteOptions"] ?? .null
        if let uid = options[path: ["preconditions", "uid"]]?.stringValue, !uid.isEmpty, uid != pod[path: ["metadata", "uid"]]?.stringValue {
            throw APIError(code: 409, reason: "Conflict", message: "Precondition failed: UID in precondition: \(uid), UID in object meta: "
                           + (pod[path: ["metadata", "uid"]]?.stringValue ?? ""))
        }
        let grace = options["gracePeriodSeconds"]?.int64Value
        _ = try await deleteCollecting(key, resourceVersion: options[path: ["preconditions", "resourceVersion"]]?.stringValue,
                                       policy: try Self.propagation(options: options, query: [:]), gracePeriod: grace)
    }

    private func bind(_ key: ObjectKey, binding: JSONValue) async throws {
        guard binding["target"]?["kind"]?.stringValue ?? "Node" == "Node", let node = binding[path: ["target", "name"]]?.stringValue, !node.isEmpty else {
            throw APIError.invalid("Binding \"\(key.name)\" is invalid: target.name: Required value")
        }
        guard var pod = try await store.get(key) else { throw APIError.notFound("pods", key.name) }
        if let uid = binding[path: ["metadata", "uid"]]?.stringValue, !uid.isEmpty, uid != pod[path: ["metadata", "uid"]]?.stringValue {
            throw APIError(code: 409, reason: "Conflict", message: "Operation cannot be fulfilled on pods/binding \"\(key.name)\": the UID in the binding does not match the pod")
        }
        if let bound = pod[path: ["spec", "nodeName"]]?.stringValue, !bound.isEmpty {
            throw APIError(code: 409, reason: "Conflict", message: "Operation cannot be fulfilled on pods/binding \"\(key.name)\": pod \(key.name) is already assigned to node \"\(bound)\"")
        }
        guard pod[path: ["metadata", "deletionTimestamp"]] == nil else {
            throw APIError(code: 409, reason: "Conflict", message: "Operation cannot be fulfilled on pods/binding \"\(key.name)\": pod \(key.name) is being deleted, cannot be assigned to a host")
        }
        pod.set(.string(node), at: ["spec", "nodeName"])
        // PodScheduled=True, as the binding sets it.
        var conditions = (pod[path: ["status", "conditions"]]?.arrayValue ?? []).filter { $0["type"]?.stringValue != "PodScheduled" }
        conditions.append(.object(JSONObject([
            ("type", .string("PodScheduled")), ("status", .string("True")), ("lastProbeTime", .null),
            ("lastTransitionTime", .string(ObjectStore.now())),
        ])))
        pod.set(.array(conditions), at: ["status", "conditions"])
        _ = try await store.update(key, pod)
    }

    /// Whether `resource` has workload defaults and checks (``WorkloadRules``), pods included.
    static func hasWorkloadRules(_ resource: APIResource) -> Bool {
        WorkloadRules.kinds.contains(resource.storageName) || resource.storageName == "pods"
    }

    /// A workload's defaults and kube's checks (a pod's affinity too); `old` is what is stored
    /// on an update.
    static func checkWorkload(_ object: inout JSONValue, resource: APIResource, old: JSONValue?) throws {
        guard hasWorkloadRules(resource) else { return }
        let name = object[path: ["metadata", "name"]]?.stringValue ?? ""
        if resource.storageName == "pods" {
            let errors = WorkloadRules.podErrors(object)
            if !errors.isEmpty { throw invalid(errors, resource: resource, name: name) }
            return
        }
        object = WorkloadRules.defaulted(object, storageName: resource.storageName, uid: object[path: ["metadata", "uid"]]?.stringValue)
        let errors = WorkloadRules.errors(in: object, storageName: resource.storageName, old: old)
        if !errors.isEmpty { throw invalid(errors, resource: resource, name: name) }
    }

    /// Checks and completes the object's identity against the URL: kind, apiVersion, name and
    /// namespace (filled in when missing, refused when different).
    private func identify(_ object: inout JSONValue, route: APIRoute) throws(APIError) -> ObjectKey {
        guard case .object = object else { throw APIError.badRequest("the body must be a JSON object") }
        let resource = route.resource
        if let kind = object["kind"]?.stringValue, kind != resource.kind { throw APIError.badRequest("kind \(kind) does not belong at \(resource.plural)") }
        object["kind"] = .string(resource.kind)
        object["apiVersion"] = .string(resource.groupVersion)
        var name = object[path: ["metadata", "name"]]?.stringValue ?? ""
        if name.isEmpty, let prefix = object[path: ["metadata", "generateName"]]?.stringValue, !prefix.isEmpty {
            name = prefix + String(UUID().uuidString.lowercased().prefix(5))
            object.set(.string(name), at: ["metadata", "name"])
        }
        if let routeName = route.name {
            if name.isEmpty { object.set(.string(routeName), at: ["metadata", "name"]) } else if name != routeName {
                throw APIError.badRequest("the name in the body (\(name)) does not match the URL (\(routeName))")
            }
            name = routeName
        }
        guard !name.isEmpty else { throw APIError.invalid("\(resource.kind) metadata.name: Required value") }
        var namespace = ""
        if resource.namespaced {
            let given = object[path: ["metadata", "namespace"]]?.stringValue ?? ""
            namespace = route.namespace ?? (given.isEmpty ? "default" : given)
            if !given.isEmpty, given != namespace {
                throw APIError.badRequest("the namespace of the object (\(given)) does not match the namespace on the request (\(namespace))")
            }
            object.set(.string(namespace), at: ["metadata", "namespace"])
        }
        return ObjectKey(resource: resource.storageName, namespace: namespace, name: name)
    }

    /// Streams the changes until `timeoutSeconds` pass, the connection closes, or a write fails.
    private func watch(_ route: APIRoute, _ selection: Selection, from version: String?, timeoutSeconds: Int?, bookmarks: Bool,
                       writer: ResponseWriter, closed: EventLoopFuture<Void>) async throws {
        let resource = route.resource
        var initial: [JSONValue] = []
        let from: Int64
        if let version, version != "0", !version.isEmpty {
            guard let revision = Int64(version) else { throw APIError.badRequest("resourceVersion \(version) is not one this server issued") }
            from = revision
        } else {
            (initial, from) = try await store.list(resource: resource.storageName, namespace: route.namespace)
            initial = initial.filter(selection.matches)
        }
        let namespace = route.namespace
        let events: AsyncStream<ObjectEvent>
        do {
            events = try await store.watch(resource: resource.storageName, namespace: namespace, after: from)
        } catch {
            try await writer.startStream()
            try await writer.streamEvent("ERROR", object: error.status)
            try await writer.endStream()
            return
        }
        try await writer.startStream()
        let custom = served.snapshot.isCustom(resource)
        for object in initial { try await writer.streamEvent("ADDED", object: custom ? Self.converted(object, to: resource) : object) }
        let deadline = ContinuousClock.now + .seconds(timeoutSeconds ?? 1800)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                for await event in events {
                    if event.kind == .bookmark {
                        guard bookmarks else { continue }
                        let marker = JSONValue.object(JSONObject([
                            ("kind", .string(resource.kind)), ("apiVersion", .string(resource.groupVersion)),
                            ("metadata", .object(JSONObject([("resourceVersion", .string(String(event.revision)))]))),
                        ]))
                        try await writer.streamEvent("BOOKMARK", object: marker)
                        continue
                    }
                    guard selection.matches(event.object) else { continue }
                    if custom {
                        try await writer.streamEvent(event.kind.rawValue, object: Self.converted(event.object, to: resource))
                    } else {
                        try await writer.streamEvent(event, frames: self.watchFrames)
                    }
                }
            }
            group.addTask { try await Task.sleep(until: deadline) }
            // The client going away ends the watch (a stream the close finishes: waiting on the
            // future itself would not end when the group is cancelled).
            let (closing, closingSink) = AsyncStream<Never>.makeStream()
            closed.whenComplete { _ in closingSink.finish() }
            group.addTask { for await _ in closing {} }
            _ = try await group.next()
            group.cancelAll()
        }
        try? await writer.endStream()
    }
}

/// An accepted connection: its async wrapper, and the channel (for the TLS peer certificate).
struct APIConnection: Sendable {
    let channel: NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>
    let nioChannel: any Channel
}

/// Writes responses and watch streams on one connection, as JSON or, when negotiated,
/// Kubernetes protobuf (objects in their envelope; watch events as length-prefixed
/// `WatchEvent` messages).
struct ResponseWriter: Sendable {
    let outbound: NIOAsyncChannelOutboundWriter<HTTPServerResponsePart>
    /// What ``APIMediaType/negotiate(accept:protobufAvailable:)`` chose for this request.
    var encoding = APIEncoding.json

    /// Sends `value`; each warning goes in a `Warning: 299 - "…"` header, as Kubernetes sends them.
    func send(_ value: JSONValue, status: HTTPResponseStatus = .ok, warnings: [String] = []) async throws {
        if encoding == .protobuf, let bytes = try? KubeProtobuf.builtIn.encodeObject(value) {
            try await send(bytes, contentType: APIMediaType.protobuf, status: status, warnings: warnings)
        } else {
            try await send(value.serializedBytes, contentType: "application/json", status: status, warnings: warnings)
        }
    }

    /// Sends an enveloped protobuf object or list as it is.
    func send(protobuf bytes: [UInt8]) async throws {
        try await send(bytes, contentType: APIMediaType.protobuf, status: .ok, warnings: [])
    }

    /// Sends an object already encoded as JSON (transcoded when protobuf was negotiated).
    func send(encoded bytes: [UInt8], status: HTTPResponseStatus = .ok, warnings: [String] = []) async throws {
        if encoding == .protobuf {
            try await send(try JSONValue(parsing: bytes), status: status, warnings: warnings)
        } else {
            try await send(bytes, contentType: "application/json", status: status, warnings: warnings)
        }
    }

    private func send(_ bytes: [UInt8], contentType: String, status: HTTPResponseStatus, warnings: [String]) async throws {
        var head = HTTPResponseHead(version: .http1_1, status: status)
        for warning in warnings {
            let quoted = warning.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            head.headers.add(name: "Warning", value: "299 - \"\(quoted)\"")
        }
        head.headers.add(name: "Content-Type", value: contentType)
        head.headers.add(name: "Content-Length", value: "\(bytes.count)")
        try await outbound.write(.head(head))
        try await outbound.write(.body(.byteBuffer(ByteBuffer(bytes: bytes))))
        try await outbound.write(.end(nil))
    }

    func send(_ error: APIError) async throws {
        try await send(error.status, status: HTTPResponseStatus(statusCode: error.code))
    }

    func startStream() async throws {
        var head = HTTPResponseHead(version: .http1_1, status: .ok)
        head.headers.add(name: "Content-Type", value: encoding == .protobuf ? APIMediaType.protobufWatch : "application/json")
        head.headers.add(name: "Transfer-Encoding", value: "chunked")
        try await outbound.write(.head(head))
    }

    /// One watch event: `{"type":TYPE,"object":OBJECT}` and a newline, or a protobuf frame.
    func streamEvent(_ type: String, object: JSONValue) async throws {
        if encoding == .protobuf {
            try await streamProtobufEvent(type, object: object)
        } else {
            var bytes = JSONValue.object(JSONObject([("type", .string(type)), ("object", object)])).serializedBytes
            bytes.append(UInt8(ascii: "\n"))
            try await outbound.write(.body(.byteBuffer(ByteBuffer(bytes: bytes))))
        }
    }

    /// A stored change: its JSON bytes as stored, or its protobuf frame from `frames` (encoded
    /// once for every watcher).
    func streamEvent(_ event: ObjectEvent, frames: WatchFrameCache) async throws {
        guard encoding == .json else {
            let frame = try frames.frame(revision: event.revision) {
                try KubeProtobuf.builtIn.watchEventFrame(type: event.kind.rawValue, object: event.object)
            }
            return try await outbound.write(.body(.byteBuffer(ByteBuffer(bytes: frame))))
        }
        try await streamEvent(event.kind.rawValue, encodedObject: event.encodedObject)
    }

    /// One watch event from the object's stored JSON bytes.
    func streamEvent(_ type: String, encodedObject: [UInt8]) async throws {
        var buffer = ByteBuffer()
        buffer.reserveCapacity(encodedObject.count + 32)
        buffer.writeString(#"{"type":"\#(type)","object":"#)
        buffer.writeBytes(encodedObject)
        buffer.writeString("}\n")
        try await outbound.write(.body(.byteBuffer(buffer)))
    }

    /// A `metav1.WatchEvent` whose object is the enveloped protobuf object, after its length
    /// (4 bytes, big-endian), as kube-apiserver frames protobuf watches.
    private func streamProtobufEvent(_ type: String, object: JSONValue) async throws {
        let frame = try KubeProtobuf.builtIn.watchEventFrame(type: type, object: object)
        try await outbound.write(.body(.byteBuffer(ByteBuffer(bytes: frame))))
    }

    func endStream() async throws {
        try await outbound.write(.end(nil))
    }
}

/// The `labelSelector` and `fieldSelector` of a list or watch.
struct Selection: Sendable {
    var labels = LabelSelector.everything
    var fields = FieldSelector.everything

    init(_ query: [String: String]) throws(APIError) {
        do {
            if let text = query["labelSelector"] { labels = try LabelSelector(parsing: text) }
            if let text = query["fieldSelector"] { fields = try FieldSelector(parsing: text) }
        } catch {
            throw APIError.badRequest(error.description)
        }
    }

    func matches(_ object: JSONValue) -> Bool { labels.matches(object: object) && fields.matches(object) }

    var selectsEverything: Bool { labels == .everything && fields == .everything }
}
