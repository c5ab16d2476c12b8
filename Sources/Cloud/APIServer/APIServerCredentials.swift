import Foundation
import Transport

/// The embedded API server's identity, created on first start in one directory and loaded after:
/// its own CA (`ca.crt`, `ca.key`), a serving certificate for the advertised names (`server.crt`,
/// `server.key`), and the bearer tokens of the admin user (`admin.token`) and of cloudcore's
/// controllers (`cloudcore.token`), readable by the owner only.
/// ``writeKubeconfig(to:server:)`` writes the admin kubeconfig kubectl uses.
public struct APIServerCredentials: Sendable {
    public let directory: String
    public let authority: CertificateAuthority
    public let tls: TLSFiles
    /// The admin user's bearer token.
    public let adminToken: String
    /// The bearer token of cloudcore's own controllers (`cloudcore.token`), whose user
    /// has only what ``KubeEdgePolicy`` grants.
    public let cloudcoreToken: String
    /// The bearer token of the embedded scheduler (`scheduler.token`), user `system:kube-scheduler`.
    public let schedulerToken: String
    /// The bearer token of the embedded workload controllers (`controller-manager.token`), user
    /// `system:kube-controller-manager`.
    public let controllerManagerToken: String
    /// The key service-account tokens are signed with, and its certificate they are checked
    /// with (`sa.key`, `sa.crt`; kube-apiserver's `--service-account-signing-key-file`).
    public let serviceAccountSigner: CertificateAuthority

    /// The user the admin token authenticates as.
    public static let adminUser = "admin"

    public static func loadOrCreate(directory: String, names: [String] = ["127.0.0.1", "localhost"]) throws -> APIServerCredentials {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let authority = try CertificateAuthority.loadOrCreate(certificatePath: directory + "/ca.crt", keyPath: directory + "/ca.key")
        let keyPath = directory + "/server.key"
        let key: PrivateKey
        if let stored = FileManager.default.contents(atPath: keyPath) {
            key = try PrivateKey(bytes: Array(stored))
        } else {
            key = try PrivateKey.generate()
            try SecretFile.write(try key.export(), to: keyPath)
        }
        let certificatePath = directory + "/server.crt"
        try Data(try authority.issueServerCertificate(key: key, names: names).export()).write(to: URL(fileURLWithPath: certificatePath), options: .atomic)
        return APIServerCredentials(
            directory: directory, authority: authority, tls: TLSFiles(certificateChain: certificatePath, privateKey: keyPath, trustRoots: directory + "/ca.crt"),
            adminToken: try loadOrCreateToken(at: directory + "/admin.token"), cloudcoreToken: try loadOrCreateToken(at: directory + "/cloudcore.token"),
            schedulerToken: try loadOrCreateToken(at: directory + "/scheduler.token"),
            controllerManagerToken: try loadOrCreateToken(at: directory + "/controller-manager.token"),
            serviceAccountSigner: try CertificateAuthority.loadOrCreate(certificatePath: directory + "/sa.crt", keyPath: directory + "/sa.key"))
    }

    /// Writes a kubeconfig (0600) for `user` in `group` with a client certificate from the API
    /// server's CA, valid for `validity`, against `server`; returns its path. What the user may
    /// do is what RBAC bindings for the user or group allow; the certificate expires on its own.
    @discardableResult
    public func writeUserKubeconfig(to path: String, server: String, user: String, group: String, validity: Duration) throws -> String {
        try Self.writeUserKubeconfig(authority: authority, to: path, server: server, user: user, group: group, validity: validity)
    }

    /// ``writeUserKubeconfig(to:server:user:group:validity:)`` with the API server's CA alone
    /// (`cloudcore adduser`, which leaves the server's own certificate and tokens alone).
    @discardableResult
    public static func writeUserKubeconfig(authority: CertificateAuthority, to path: String, server: String, user: String, group: String,
                                           validity: Duration, now: Date = Date()) throws -> String {
        let key = try PrivateKey.generate()
        let certificate = try authority.issueUserCertificate(key: key, user: user, group: group, validity: validity, now: now)
        return try writeKubeconfig(to: path, server: server, authority: authority, user: user, credentials: [
            "client-certificate-data: \(Data(try certificate.export(.pem)).base64EncodedString())",
            "client-key-data: \(Data(try key.export(.pem)).base64EncodedString())",
        ])
    }

    /// A random bearer token kept in a 0600 file.
    private static func loadOrCreateToken(at path: String) throws -> String {
        if let stored = FileManager.default.contents(atPath: path), let text = String(data: stored, encoding: .utf8), !text.isEmpty {
            return text.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        var generator = SystemRandomNumberGenerator()
        let token = LowercaseHex.encode((0..<32).map { _ in UInt8.random(in: 0...255, using: &generator) })
        try SecretFile.write(Array(token.utf8), to: path)
        return token
    }

    /// Writes a kubeconfig (0600) for the admin user, or for `user` with its bearer `token`,
    /// against `server` (`https://host:port`) and returns its path.
    @discardableResult
    public func writeKubeconfig(to path: String, server: String, user: String = adminUser, token: String? = nil) throws -> String {
        try Self.writeKubeconfig(to: path, server: server, authority: authority, user: user, credentials: ["token: \(token ?? adminToken)"])
    }

    /// A kubeconfig (0600) for `server` trusting `authority`, whose one user `user` has
    /// `credentials` (its `user:` lines: a token, or a client certificate and key).
    private static func writeKubeconfig(to path: String, server: String, authority: CertificateAuthority, user: String,
                                        credentials: [String]) throws -> String {
        let authorityPEM = try authority.certificate.export(.pem)
        let kubeconfig = """
            apiVersion: v1
            kind: Config
            clusters:
            - name: swift-kubeedge
              cluster:
                server: \(server)
                certificate-authority-data: \(Data(authorityPEM).base64EncodedString())
            users:
            - name: \(user)
              user:
            \(credentials.map { "    " + $0 }.joined(separator: "\n"))
            contexts:
            - name: swift-kubeedge
              context: {cluster: swift-kubeedge, user: \(user), namespace: default}
            current-context: swift-kubeedge

            """
        try SecretFile.write(Array(kubeconfig.utf8), to: path)
        return path
    }
}
