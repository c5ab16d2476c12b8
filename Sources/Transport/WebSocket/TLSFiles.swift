import NIOSSL
#if canImport(Glibc)
import Glibc
#endif

/// PEM files for TLS 1.3 with mutual authentication: this side's certificate chain and key, and
/// the CA that must have signed the peer's certificate.
public struct TLSFiles: Sendable, Hashable {
    /// PEM certificate chain, leaf first.
    public var certificateChain: String
    /// PEM private key of the leaf.
    public var privateKey: String
    /// PEM CA certificate(s) trusted to sign peers.
    public var trustRoots: String

    /// Creates a file set.
    public init(certificateChain: String, privateKey: String, trustRoots: String) {
        self.certificateChain = certificateChain
        self.privateKey = privateKey
        self.trustRoots = trustRoots
    }

    /// A server context that requires and verifies a client certificate.
    func makeServerContext() throws -> NIOSSLContext {
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: try NIOSSLCertificate.fromPEMFile(certificateChain).map { .certificate($0) },
            privateKey: .privateKey(try NIOSSLPrivateKey(file: privateKey, format: .pem)))
        configuration.minimumTLSVersion = .tlsv13
        configuration.certificateVerification = .noHostnameVerification
        configuration.trustRoots = .file(trustRoots)
        return try NIOSSLContext(configuration: configuration)
    }

    /// A client context that presents this side's certificate and verifies the server's.
    func makeClientContext() throws -> NIOSSLContext {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = .tlsv13
        configuration.certificateVerification = .fullVerification
        configuration.trustRoots = .file(trustRoots)
        configuration.certificateChain = try NIOSSLCertificate.fromPEMFile(certificateChain).map { .certificate($0) }
        configuration.privateKey = .privateKey(try NIOSSLPrivateKey(file: privateKey, format: .pem))
        return try NIOSSLContext(configuration: configuration)
    }

    /// The name to send as SNI and check the server certificate against: `serverName`, or
    /// `nil` for an IP address, which SNI cannot carry. With `nil` the certificate chain is still
    /// verified against ``trustRoots`` (a private CA, pinned through the join token, whose leaf
    /// certificates for nodes cannot pass as a server's: they carry only the clientAuth usage).
    public static func sniHostname(for serverName: String) -> String? {
        var address = in6_addr()
        var address4 = in_addr()
        if inet_pton(AF_INET, serverName, &address4) == 1 || inet_pton(AF_INET6, serverName, &address) == 1 { return nil }
        return serverName
    }
}
