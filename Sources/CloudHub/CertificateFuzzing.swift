import Foundation
import Logging
import NIOHTTP1
import Transport

/// The hub's certificate endpoint (`/ca.crt`, `/edge.crt`: bootstrap tokens, CSRs, rotation by
/// the node's own certificate) without its listener, for the fuzz targets (`tools/fuzz`).
@_spi(Fuzzing)
public struct CertificateEndpointFuzzing: Sendable {
    private let service: CertificateService
    /// A token the endpoint accepts, for seeds.
    public let validToken: String

    /// A CA and server certificate under `directory` (created once, then reused).
    public init(directory: String) throws {
        let credentials = try HubCredentials.loadOrCreate(directory: directory, advertiseAddresses: ["127.0.0.1"])
        service = CertificateService(credentials: credentials, certificateValidity: .seconds(3600), logger: Logger(label: "fuzz", factory: { _ in SwiftLogNoOpLogHandler() }))
        validToken = try BootstrapToken.make(authority: credentials.authority)
    }

    /// Answers one request; the HTTP status code.
    public func answer(method: String, path: String, headers: [(String, String)], body: [UInt8], peerCertificate: [UInt8]?) -> Int {
        let reply = service.answer(method: HTTPMethod(rawValue: method), path: path, headers: HTTPHeaders(headers), body: body, peerCertificate: peerCertificate)
        return Int(reply.status.code)
    }
}
