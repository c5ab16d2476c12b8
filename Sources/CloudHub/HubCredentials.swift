import Foundation
import Transport

/// The hub's CA and its TLS server certificate as files the listeners load: created (CA) or
/// loaded on start, the server certificate issued afresh for the advertised names.
struct HubCredentials: Sendable {
    let authority: CertificateAuthority
    /// The listeners' certificate, key and the CA that node certificates must chain to.
    let tls: TLSFiles
    /// The CA certificate as DER (what `GET /ca.crt` returns).
    let authorityDER: [UInt8]

    static func loadOrCreate(directory: String, advertiseAddresses: [String]) throws -> HubCredentials {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let caPath = directory + "/ca.crt"
        let authority = try CertificateAuthority.loadOrCreate(certificatePath: caPath, keyPath: directory + "/ca.key")
        let keyPath = directory + "/server.key"
        let key: PrivateKey
        if let stored = FileManager.default.contents(atPath: keyPath) {
            key = try PrivateKey(bytes: Array(stored))
        } else {
            key = try PrivateKey.generate()
            try SecretFile.write(try key.export(), to: keyPath)
        }
        let certificate = try authority.issueServerCertificate(key: key, names: advertiseAddresses)
        let certificatePath = directory + "/server.crt"
        try Data(try certificate.export()).write(to: URL(fileURLWithPath: certificatePath), options: .atomic)
        return HubCredentials(
            authority: authority, tls: TLSFiles(certificateChain: certificatePath, privateKey: keyPath, trustRoots: caPath),
            authorityDER: try authority.certificate.export(.der))
    }
}
