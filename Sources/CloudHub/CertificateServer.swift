import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import Synchronization
import Transport

/// The hub's HTTPS endpoint for joining and rotation (KubeEdge's port 10002):
/// - `GET /ca.crt` returns the CA certificate (DER). The edge checks it against the fingerprint
///   in its token before trusting it.
/// - `GET` or `POST /edge.crt` with a DER certificate request as body returns the node
///   certificate (DER). Authorised by `Authorization: Bearer {token}` (joining), or by the
///   node's current certificate presented in TLS (rotation: only for the same node).
/// Every refusal answers with a status and a one-line reason, and is logged.
final class CertificateServer: Sendable {
    private let host: String
    private let port: Int
    private let credentials: HubCredentials
    private let limits: CertificateServerLimits
    private let certificateValidity: Duration
    private let group: any EventLoopGroup
    private let logger: Logger
    private let listener = Mutex<(any Channel)?>(nil)
    private let connections = Atomic<Int>(0)
    private let counterBox = CertificateEndpointCounterBox()

    /// What the endpoint answered and refused so far.
    var counters: CertificateEndpointCounters { counterBox.snapshot }

    init(host: String, port: Int, credentials: HubCredentials, limits: CertificateServerLimits, certificateValidity: Duration,
         group: any EventLoopGroup, logger: Logger) {
        self.host = host
        self.port = port
        self.credentials = credentials
        self.limits = limits
        self.certificateValidity = certificateValidity
        self.group = group
        self.logger = logger
    }

    /// Binds and starts serving; returns the bound port.
    func start() async throws -> Int {
        var tls = TLSConfiguration.makeServerConfiguration(
            certificateChain: try NIOSSLCertificate.fromPEMFile(credentials.tls.certificateChain).map { .certificate($0) },
            privateKey: .privateKey(try NIOSSLPrivateKey(file: credentials.tls.privateKey, format: .pem)))
        tls.minimumTLSVersion = .tlsv12
        // Joining edges have no certificate yet; rotating ones present theirs.
        tls.certificateVerification = .optionalVerification
        tls.trustRoots = .file(credentials.tls.trustRoots)
        let context = try NIOSSLContext(configuration: tls)
        let service = CertificateService(credentials: credentials, certificateValidity: certificateValidity, logger: logger)
        let limits = limits
        let logger = logger
        let counters = counterBox
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { [self] channel in
                let open = connections.wrappingAdd(1, ordering: .relaxed).newValue
                channel.closeFuture.whenComplete { _ in self.connections.wrappingSubtract(1, ordering: .relaxed) }
                guard open <= limits.maxConnections else {
                    let refused = counters.update { $0.connectionsOverLimit += 1; return $0.connectionsOverLimit }
                    if RefusalLogThrottle.shouldLog(refused) {
                        logger.warning("refusing certificate endpoint connection: maxConnections reached", metadata: [
                            "limit": "\(limits.maxConnections)", "refusedSoFar": "\(refused)",
                        ])
                    }
                    return channel.close()
                }
                return channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    try sync.addHandler(NIOSSLServerHandler(context: context))
                    try sync.configureHTTPServerPipeline(withErrorHandling: true)
                    try sync.addHandler(CertificateRequestHandler(service: service, limits: limits, counters: counters, logger: logger))
                }
            }
            .bind(host: host, port: port).get()
        listener.withLock { $0 = channel }
        return channel.localAddress?.port ?? port
    }

    func stop() async {
        let channel = listener.withLock { channel -> (any Channel)? in defer { channel = nil }; return channel }
        try? await channel?.close()
    }
}

/// The answers of the certificate endpoint, independent of HTTP plumbing.
struct CertificateService: Sendable {
    let credentials: HubCredentials
    let certificateValidity: Duration
    let logger: Logger

    struct Reply {
        var status: HTTPResponseStatus
        var body: [UInt8]
        var contentType: String

        static func refusal(_ status: HTTPResponseStatus, _ reason: String) -> Reply {
            Reply(status: status, body: Array((reason + "\n").utf8), contentType: "text/plain; charset=utf-8")
        }
    }

    /// Answers one request. `peerCertificate` is the verified TLS client certificate (DER), if any.
    func answer(method: HTTPMethod, path: String, headers: HTTPHeaders, body: [UInt8], peerCertificate: [UInt8]?) -> Reply {
        let route = path.split(separator: "?", maxSplits: 1).first.map(String.init) ?? path
        switch (method, route) {
        case (.GET, "/ca.crt"):
            return Reply(status: .ok, body: credentials.authorityDER, contentType: "application/pkix-cert")
        case (.GET, "/edge.crt"), (.POST, "/edge.crt"):
            return issue(headers: headers, body: body, peerCertificate: peerCertificate)
        case (_, "/ca.crt"), (_, "/edge.crt"):
            return .refusal(.methodNotAllowed, "\(method) is not allowed on \(route)")
        default:
            return .refusal(.notFound, "no such endpoint: \(route) (try /ca.crt or /edge.crt)")
        }
    }

    private func issue(headers: HTTPHeaders, body: [UInt8], peerCertificate: [UInt8]?) -> Reply {
        guard !body.isEmpty else { return .refusal(.badRequest, "the body must be a DER certificate request") }
        let request: CertificateSigningRequest
        do {
            request = try CertificateSigningRequest(bytes: body, encoding: .der)
        } catch {
            return .refusal(.badRequest, "the certificate request is not valid: \(error)")
        }
        let commonName = request.commonName
        guard commonName.hasPrefix(CertificateAuthority.nodeNamePrefix) else {
            return .refusal(.badRequest, "the certificate request is for \"\(commonName)\", not \(CertificateAuthority.nodeNamePrefix)NODE")
        }
        let node = String(commonName.dropFirst(CertificateAuthority.nodeNamePrefix.count))
        if let named = headers.first(name: "NodeName"), named != node {
            return .refusal(.badRequest, "the NodeName header says \(named) but the certificate request is for \(node)")
        }
        if let authorization = headers.first(name: "Authorization") {
            guard authorization.hasPrefix("Bearer ") else { return .refusal(.unauthorized, "the Authorization header must be Bearer {token}") }
            do {
                try BootstrapToken.validate(String(authorization.dropFirst(7)), authority: credentials.authority)
            } catch {
                return .refusal(.unauthorized, "token refused: \(error)")
            }
        } else if let peerCertificate {
            // Rotation: the node's own current certificate, which TLS verified against the CA.
            switch NodeCertificateName.node(in: peerCertificate) {
            case .success(let current) where current == node:
                break
            case .success(let current):
                return .refusal(.forbidden, "node \(current) may not request a certificate for node \(node)")
            case .failure(let refusal):
                return .refusal(.forbidden, refusal.reason)
            }
        } else {
            return .refusal(.unauthorized, "a bootstrap token (Authorization: Bearer) or the node's current certificate is required")
        }
        do {
            let certificate = try credentials.authority.issueNodeCertificate(for: request, node: node, validity: certificateValidity)
            logger.info("issued a node certificate", metadata: ["node": "\(node)", "notAfter": "\(certificate.notAfter)"])
            return Reply(status: .ok, body: try certificate.export(.der), contentType: "application/pkix-cert")
        } catch {
            return .refusal(.badRequest, "cannot issue a certificate: \(error)")
        }
    }
}

/// Collects one request at a time within the limits and writes the service's answer.
final class CertificateRequestHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let service: CertificateService
    private let limits: CertificateServerLimits
    private let counters: CertificateEndpointCounterBox
    private let logger: Logger
    private var answered = false
    private var head: HTTPRequestHead?
    private var body: [UInt8] = []
    private var refused: CertificateService.Reply?
    private var timer: Scheduled<Void>?

    init(service: CertificateService, limits: CertificateServerLimits, counters: CertificateEndpointCounterBox, logger: Logger) {
        self.service = service
        self.limits = limits
        self.counters = counters
        self.logger = logger
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let loopBound = NIOLoopBound((context, self), eventLoop: context.eventLoop)
        let timeout = limits.requestTimeout
        let counters = counters
        timer = context.eventLoop.scheduleTask(in: TimeAmount(timeout)) {
            let (context, handler) = loopBound.value
            if !handler.answered { counters.update { $0.requestTimeouts += 1 } }
            context.close(promise: nil)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let requestHead):
            head = requestHead
            body = []
            refused = nil
            let headerBytes = requestHead.uri.utf8.count + requestHead.headers.reduce(0) { $0 + $1.name.utf8.count + $1.value.utf8.count + 4 }
            if headerBytes > limits.maxHeaderBytes {
                refused = .refusal(.requestHeaderFieldsTooLarge, "the request head is \(headerBytes) bytes; the limit is \(limits.maxHeaderBytes)")
            } else if let length = requestHead.headers.first(name: "Content-Length").flatMap(Int.init), length > limits.maxBodyBytes {
                refused = .refusal(.payloadTooLarge, "the body is \(length) bytes; the limit is \(limits.maxBodyBytes)")
            }
        case .body(var chunk):
            guard refused == nil else { return }
            if body.count + chunk.readableBytes > limits.maxBodyBytes {
                refused = .refusal(.payloadTooLarge, "the body exceeds the limit of \(limits.maxBodyBytes) bytes")
                body = []
                return
            }
            body += chunk.readBytes(length: chunk.readableBytes) ?? []
        case .end:
            guard let head else { return }
            self.head = nil
            let peer = try? context.pipeline.syncOperations.handler(type: NIOSSLServerHandler.self).peerCertificate?.toDERBytes()
            let reply = refused ?? service.answer(method: head.method, path: head.uri, headers: head.headers, body: body, peerCertificate: peer)
            body = []
            answered = true
            let refusals = counters.update { counters in
                counters.record(reply.status)
                return counters.refused
            }
            if reply.status != .ok, RefusalLogThrottle.shouldLog(refusals) {
                logger.warning("certificate endpoint refused a request", metadata: [
                    "path": "\(head.uri)", "status": "\(reply.status.code)",
                    "reason": "\(String(decoding: reply.body, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))",
                    "address": "\(context.remoteAddress.map { "\($0)" } ?? "?")", "refusedSoFar": "\(refusals)",
                ])
            }
            write(reply, keepAlive: head.isKeepAlive && refused == nil, context: context)
        }
    }

    private func write(_ reply: CertificateService.Reply, keepAlive: Bool, context: ChannelHandlerContext) {
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: reply.contentType)
        headers.add(name: "Content-Length", value: "\(reply.body.count)")
        if !keepAlive { headers.add(name: "Connection", value: "close") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: reply.status, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: reply.body)))), promise: nil)
        let done = context.writeAndFlushPromise()
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: done)
        if !keepAlive {
            let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
            done.futureResult.whenComplete { _ in loopBound.value.close(promise: nil) }
        }
    }
}

extension ChannelHandlerContext {
    fileprivate func writeAndFlushPromise() -> EventLoopPromise<Void> { eventLoop.makePromise() }
}
