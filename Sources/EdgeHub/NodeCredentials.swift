import Foundation
import Logging
import Transport

/// The node's key, certificate and the cloud's CA on disk (`node.key`, `node.crt`, `ca.crt`):
/// obtained by joining with a token, renewed (same key name, new key) before expiry.
struct NodeCredentials: Sendable {
    let directory: String
    let node: String

    var caPath: String { directory + "/ca.crt" }
    var keyPath: String { directory + "/node.key" }
    var certificatePath: String { directory + "/node.crt" }
    /// The files the transports load.
    var tls: TLSFiles { TLSFiles(certificateChain: certificatePath, privateKey: keyPath, trustRoots: caPath) }

    /// The stored certificate, if it is this node's and issued by the stored CA.
    func current() -> Certificate? {
        guard let caBytes = FileManager.default.contents(atPath: caPath), let certificateBytes = FileManager.default.contents(atPath: certificatePath),
              FileManager.default.fileExists(atPath: keyPath),
              let authority = try? Certificate(bytes: Array(caBytes)), let certificate = try? Certificate(bytes: Array(certificateBytes)),
              certificate.commonName == CertificateAuthority.nodeNamePrefix + node, certificate.isIssued(by: authority)
        else { return nil }
        return certificate
    }

    /// Gets a first certificate with `token`: fetches the CA, checks it against the token's
    /// fingerprint, and sends a request for a new key.
    func join(token: String, client: CertificateClient, logger: Logger) async throws {
        let expected = try BootstrapToken.caHash(of: token)
        let authorityDER = try await client.fetchAuthority()
        let authority = try Certificate(bytes: authorityDER, encoding: .der)
        let served = try authority.sha256Hex()
        guard served == expected else { throw JoinError.authorityMismatch(expected: expected, served: served) }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try Data(try authority.export()).write(to: URL(fileURLWithPath: caPath), options: .atomic)
        try await obtain(client: client, authority: authority, token: token, identity: nil)
        logger.info("joined the cloud", metadata: ["node": "\(node)", "certificate": "\(certificatePath)"])
    }

    /// Renews the certificate using the current one as proof of identity.
    func rotate(client: CertificateClient, logger: Logger) async throws {
        guard let caBytes = FileManager.default.contents(atPath: caPath) else { throw JoinError.invalidCertificate("no stored CA") }
        let authority = try Certificate(bytes: Array(caBytes))
        try await obtain(client: client, authority: authority, token: nil, identity: tls)
        logger.info("renewed the node certificate", metadata: ["node": "\(node)"])
    }

    private func obtain(client: CertificateClient, authority: Certificate, token: String?, identity: TLSFiles?) async throws {
        let key = try PrivateKey.generate()
        let request = try CertificateSigningRequest(commonName: CertificateAuthority.nodeNamePrefix + node, organization: CertificateAuthority.nodeOrganization, key: key)
        let answer = try await client.requestCertificate(
            try request.export(.der), node: node, authority: try authority.export(.der), token: token, identity: identity)
        let certificate: Certificate
        do {
            certificate = try Certificate(bytes: answer, encoding: .der)
        } catch {
            throw JoinError.invalidCertificate("\(error)")
        }
        guard certificate.isIssued(by: authority), certificate.commonName == CertificateAuthority.nodeNamePrefix + node else {
            throw JoinError.invalidCertificate("it is for \(certificate.commonName) or not from the expected CA")
        }
        // Key first, then certificate, each replaced atomically: a crash in between leaves a
        // key without its certificate, which `current()` rejects and the next start re-joins.
        let temporaryKey = keyPath + ".new"
        try SecretFile.write(try key.export(), to: temporaryKey)
        guard rename(temporaryKey, keyPath) == 0 else { throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: keyPath]) }
        try Data(try certificate.export()).write(to: URL(fileURLWithPath: certificatePath), options: .atomic)
    }

    /// When `certificate` should be renewed: at a random point of `window` through its life.
    static func renewalTime(of certificate: Certificate, window: ClosedRange<Double>) -> Date {
        let life = certificate.notAfter.timeIntervalSince(certificate.notBefore)
        return certificate.notBefore.addingTimeInterval(life * Double.random(in: window))
    }
}
