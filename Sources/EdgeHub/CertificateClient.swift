import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import Transport

/// Why joining or renewing the node certificate failed.
public enum JoinError: Error, Equatable, CustomStringConvertible {
    /// No certificate yet and no token to get one with.
    case noToken
    /// The CA the cloud served is not the one the token names.
    case authorityMismatch(expected: String, served: String)
    /// The cloud refused the request; `reason` is its answer.
    case refused(status: Int, reason: String)
    /// The cloud's answer was not a certificate for this node from the expected CA.
    case invalidCertificate(String)

    public var description: String {
        switch self {
        case .noToken: "no node certificate yet and no bootstrap token to join with"
        case .authorityMismatch(let expected, let served): "the cloud's CA (sha256 \(served)) is not the one the token names (\(expected))"
        case .refused(let status, let reason): "the cloud refused the certificate request (HTTP \(status)): \(reason)"
        case .invalidCertificate(let reason): "the cloud's certificate is not usable: \(reason)"
        }
    }
}

/// One HTTPS request to CloudHub's certificate endpoint.
struct CertificateClient: Sendable {
    let host: String
    let port: Int
    let serverName: String
    let group: any EventLoopGroup
    let timeout: Duration

    /// `GET /ca.crt` without trusting the server yet; the caller checks the result against the
    /// fingerprint in the token.
    func fetchAuthority() async throws -> [UInt8] {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.certificateVerification = .none
        let (status, body) = try await perform(method: .GET, path: "/ca.crt", headers: [:], body: [], tls: tls)
        guard status == .ok else { throw JoinError.refused(status: Int(status.code), reason: String(decoding: body, as: UTF8.self)) }
        return body
    }

    /// `POST /edge.crt` with `request` (DER); trusts only `authority` (DER). Authorised by
    /// `token`, or by `identity` (the node's current certificate and key, PEM files) to rotate.
    func requestCertificate(_ request: [UInt8], node: String, authority: [UInt8], token: String?, identity: TLSFiles?) async throws -> [UInt8] {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.trustRoots = .certificates([try NIOSSLCertificate(bytes: authority, format: .der)])
        if let identity {
            tls.certificateChain = try NIOSSLCertificate.fromPEMFile(identity.certificateChain).map { .certificate($0) }
            tls.privateKey = .privateKey(try NIOSSLPrivateKey(file: identity.privateKey, format: .pem))
        }
        var headers = HTTPHeaders()
        headers.add(name: "NodeName", value: node)
        headers.add(name: "Content-Type", value: "application/pkcs10")
        if let token { headers.add(name: "Authorization", value: "Bearer \(token)") }
        let (status, body) = try await perform(method: .POST, path: "/edge.crt", headers: headers, body: request, tls: tls)
        guard status == .ok else {
            throw JoinError.refused(status: Int(status.code), reason: String(decoding: body, as: UTF8.self).trimmingTrailingNewlines())
        }
        return body
    }

    private func perform(method: HTTPMethod, path: String, headers: HTTPHeaders, body: [UInt8], tls: TLSConfiguration) async throws -> (HTTPResponseStatus, [UInt8]) {
        let context = try NIOSSLContext(configuration: tls)
        let serverName = serverName
        let response = group.next().makePromise(of: (HTTPResponseStatus, [UInt8]).self)
        let connecting = ClientBootstrap(group: group)
            .connectTimeout(TimeAmount(timeout))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    // SNI carries DNS names only; an IP address is still checked against the certificate.
                    try sync.addHandler(NIOSSLClientHandler(context: context, serverHostname: TLSFiles.sniHostname(for: serverName)))
                    try sync.addHTTPClientHandlers()
                    try sync.addHandler(ResponseCollector(response: response))
                }
            }
            .connect(host: host, port: port)
        let channel: any Channel
        do {
            channel = try await connecting.get()
        } catch {
            response.fail(error)
            throw error
        }
        let timer = channel.eventLoop.scheduleTask(in: TimeAmount(timeout)) {
            response.fail(JoinError.refused(status: 0, reason: "no answer within \(timeout)"))
            channel.close(promise: nil)
        }
        defer { timer.cancel() }
        var head = HTTPRequestHead(version: .http1_1, method: method, uri: path, headers: headers)
        head.headers.add(name: "Host", value: host)
        head.headers.add(name: "Content-Length", value: "\(body.count)")
        head.headers.add(name: "Connection", value: "close")
        channel.write(HTTPClientRequestPart.head(head), promise: nil)
        if !body.isEmpty { channel.write(HTTPClientRequestPart.body(.byteBuffer(ByteBuffer(bytes: body))), promise: nil) }
        channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
        let result = try await response.futureResult.get()
        try? await channel.close()
        return result
    }
}

/// Collects one response (bounded: certificates are small).
private final class ResponseCollector: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart
    private static let maxBody = 64 << 10
    private let response: EventLoopPromise<(HTTPResponseStatus, [UInt8])>
    private var status: HTTPResponseStatus?
    private var body: [UInt8] = []

    init(response: EventLoopPromise<(HTTPResponseStatus, [UInt8])>) { self.response = response }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head): status = head.status
        case .body(var chunk):
            guard body.count + chunk.readableBytes <= Self.maxBody else {
                response.fail(JoinError.invalidCertificate("the answer exceeds \(Self.maxBody) bytes"))
                return context.close(promise: nil)
            }
            body += chunk.readBytes(length: chunk.readableBytes) ?? []
        case .end:
            response.succeed((status ?? .internalServerError, body))
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        response.fail(error)
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        response.fail(JoinError.refused(status: 0, reason: "the connection closed before an answer"))
    }
}

extension String {
    fileprivate func trimmingTrailingNewlines() -> String {
        var text = self
        while text.last == "\n" || text.last == "\r" { text.removeLast() }
        return text
    }
}
