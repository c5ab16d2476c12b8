import CNGTCP2
import Foundation

/// The cloud's certificate authority: it signs the certificates edges present in mutual TLS
/// (`CN=system:node:{node}`, `O=system:nodes`, as KubeEdge issues them) and the cloud's own
/// server certificate. ECDSA P-256, SHA-256 signatures.
public final class CertificateAuthority: Sendable {
    /// The CA certificate (self-signed).
    public let certificate: Certificate
    /// The CA key.
    public let key: PrivateKey

    /// The common-name prefix of node certificates.
    public static let nodeNamePrefix = "system:node:"
    /// The organization of node certificates.
    public static let nodeOrganization = "system:nodes"

    public init(certificate: Certificate, key: PrivateKey) throws(IdentityError) {
        guard certificate.isAuthority else { throw .invalid("the certificate \(certificate.commonName) is not a CA certificate") }
        self.certificate = certificate
        self.key = key
    }

    /// A new CA with a fresh key, valid for `validity` (default 10 years).
    public static func create(commonName: String = "KubeEdge", validity: Duration = .seconds(10 * 365 * 86_400), now: Date = Date()) throws(IdentityError) -> CertificateAuthority {
        let key = try PrivateKey.generate()
        let certificate = try Certificate()
        let handle = certificate.handle
        try certificate.setBasics(validity: validity, now: now)
        try certificate.setName(GNUTLS_OID_X520_COMMON_NAME, commonName)
        try checkIdentity(gnutls_x509_crt_set_key(handle, key.handle), "gnutls_x509_crt_set_key")
        try checkIdentity(gnutls_x509_crt_set_basic_constraints(handle, 1, -1), "gnutls_x509_crt_set_basic_constraints")
        try checkIdentity(gnutls_x509_crt_set_key_usage(handle, UInt32(GNUTLS_KEY_KEY_CERT_SIGN | GNUTLS_KEY_CRL_SIGN | GNUTLS_KEY_DIGITAL_SIGNATURE)), "gnutls_x509_crt_set_key_usage")
        try setSubjectKeyID(certificate)
        try checkIdentity(gnutls_x509_crt_sign2(handle, handle, key.handle, GNUTLS_DIG_SHA256, 0), "gnutls_x509_crt_sign2")
        return try CertificateAuthority(certificate: try encoded(certificate), key: key)
    }

    /// Loads the CA from PEM files, or creates one and writes both files (key mode 0600) when
    /// neither exists: what cloudcore does on its first start.
    public static func loadOrCreate(certificatePath: String, keyPath: String) throws -> CertificateAuthority {
        let files = FileManager.default
        switch (files.fileExists(atPath: certificatePath), files.fileExists(atPath: keyPath)) {
        case (true, true):
            let certificate = try Certificate(bytes: Array(try Data(contentsOf: URL(fileURLWithPath: certificatePath))))
            let key = try PrivateKey(bytes: Array(try Data(contentsOf: URL(fileURLWithPath: keyPath))))
            return try CertificateAuthority(certificate: certificate, key: key)
        case (false, false):
            let authority = try create()
            try files.createDirectory(atPath: (certificatePath as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try files.createDirectory(atPath: (keyPath as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            guard files.createFile(atPath: keyPath, contents: Data(try authority.key.export()), attributes: [.posixPermissions: 0o600]) else {
                throw IdentityError.invalid("cannot write the CA key to \(keyPath)")
            }
            try Data(try authority.certificate.export()).write(to: URL(fileURLWithPath: certificatePath))
            return authority
        default:
            throw IdentityError.invalid("only one of \(certificatePath) and \(keyPath) exists; both or neither must")
        }
    }

    /// Signs `request` as node `node`'s client certificate, valid for `validity` (default 365
    /// days). The request's common name must be `system:node:{node}`; the certificate carries
    /// only the name and key, never other fields of the request.
    public func issueNodeCertificate(for request: CertificateSigningRequest, node: String, validity: Duration = .seconds(365 * 86_400), now: Date = Date()) throws(IdentityError) -> Certificate {
        try Self.validateNodeName(node)
        let expected = Self.nodeNamePrefix + node
        guard request.commonName == expected else {
            throw .invalid("the certificate request is for \"\(request.commonName)\", not \"\(expected)\"")
        }
        let certificate = try issue(request: request, validity: validity, now: now)
        try certificate.setName(GNUTLS_OID_X520_COMMON_NAME, expected)
        try certificate.setName(GNUTLS_OID_X520_ORGANIZATION_NAME, Self.nodeOrganization)
        try checkIdentity(gnutls_x509_crt_set_key_purpose_oid(certificate.handle, GNUTLS_KP_TLS_WWW_CLIENT, 0), "gnutls_x509_crt_set_key_purpose_oid")
        return try sign(certificate)
    }

    /// Issues a client certificate for a Kubernetes user: common name `user`, organization
    /// `group` (the group Kubernetes authenticators read from it; none when empty), for `key`,
    /// valid for `validity`.
    public func issueUserCertificate(key: PrivateKey, user: String, group: String, validity: Duration, now: Date = Date()) throws(IdentityError) -> Certificate {
        guard !user.isEmpty else { throw .invalid("a user certificate needs a user name") }
        let certificate = try Certificate()
        try certificate.setBasics(validity: validity, now: now)
        try certificate.setName(GNUTLS_OID_X520_COMMON_NAME, user)
        if !group.isEmpty { try certificate.setName(GNUTLS_OID_X520_ORGANIZATION_NAME, group) }
        try checkIdentity(gnutls_x509_crt_set_key(certificate.handle, key.handle), "gnutls_x509_crt_set_key")
        try checkIdentity(gnutls_x509_crt_set_key_purpose_oid(certificate.handle, GNUTLS_KP_TLS_WWW_CLIENT, 0), "gnutls_x509_crt_set_key_purpose_oid")
        try checkIdentity(gnutls_x509_crt_set_basic_constraints(certificate.handle, 0, -1), "gnutls_x509_crt_set_basic_constraints")
        try checkIdentity(gnutls_x509_crt_set_key_usage(certificate.handle, UInt32(GNUTLS_KEY_DIGITAL_SIGNATURE)), "gnutls_x509_crt_set_key_usage")
        try Self.setSubjectKeyID(certificate)
        return try sign(certificate)
    }

    /// Issues the cloud's server certificate for `key`, valid for the DNS names and IP
    /// addresses in `names` (the first is also the common name).
    public func issueServerCertificate(key: PrivateKey, names: [String], validity: Duration = .seconds(365 * 86_400), now: Date = Date()) throws(IdentityError) -> Certificate {
        guard let first = names.first else { throw .invalid("a server certificate needs at least one name") }
        let certificate = try Certificate()
        let handle = certificate.handle
        try certificate.setBasics(validity: validity, now: now)
        try certificate.setName(GNUTLS_OID_X520_COMMON_NAME, first)
        try checkIdentity(gnutls_x509_crt_set_key(handle, key.handle), "gnutls_x509_crt_set_key")
        for name in names {
            if let address = Self.ipAddressBytes(name) {
                try checkIdentity(
                    gnutls_x509_crt_set_subject_alt_name(handle, GNUTLS_SAN_IPADDRESS, address, UInt32(address.count), UInt32(GNUTLS_FSAN_APPEND)),
                    "gnutls_x509_crt_set_subject_alt_name")
            } else {
                try checkIdentity(
                    gnutls_x509_crt_set_subject_alt_name(handle, GNUTLS_SAN_DNSNAME, name, UInt32(name.utf8.count), UInt32(GNUTLS_FSAN_APPEND)),
                    "gnutls_x509_crt_set_subject_alt_name")
            }
        }
        try checkIdentity(gnutls_x509_crt_set_key_purpose_oid(handle, GNUTLS_KP_TLS_WWW_SERVER, 0), "gnutls_x509_crt_set_key_purpose_oid")
        try checkIdentity(gnutls_x509_crt_set_basic_constraints(handle, 0, -1), "gnutls_x509_crt_set_basic_constraints")
        try checkIdentity(gnutls_x509_crt_set_key_usage(handle, UInt32(GNUTLS_KEY_DIGITAL_SIGNATURE)), "gnutls_x509_crt_set_key_usage")
        try Self.setSubjectKeyID(certificate)
        return try sign(certificate)
    }

    /// A node name as Kubernetes accepts it (RFC 1123 subdomain): lowercase letters, digits,
    /// `-` and `.`, starting and ending with a letter or digit, at most 253 characters.
    public static func validateNodeName(_ node: String) throws(IdentityError) {
        let bytes = Array(node.utf8)
        func alphanumeric(_ byte: UInt8) -> Bool { (0x61...0x7A).contains(byte) || (0x30...0x39).contains(byte) }
        guard !bytes.isEmpty, bytes.count <= 253, alphanumeric(bytes.first!), alphanumeric(bytes.last!),
              bytes.allSatisfy({ alphanumeric($0) || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: ".") })
        else { throw .invalid("\"\(node)\" is not a valid node name (lowercase letters, digits, '-' and '.', at most 253)") }
    }

    // MARK: helpers

    /// A certificate with `request`'s public key (only), the basics and a client's key usage.
    private func issue(request: CertificateSigningRequest, validity: Duration, now: Date) throws(IdentityError) -> Certificate {
        let certificate = try Certificate()
        let handle = certificate.handle
        try certificate.setBasics(validity: validity, now: now)
        var publicKey: gnutls_pubkey_t?
        try checkIdentity(gnutls_pubkey_init(&publicKey), "gnutls_pubkey_init")
        defer { gnutls_pubkey_deinit(publicKey) }
        try checkIdentity(gnutls_pubkey_import_x509_crq(publicKey, request.handle, 0), "gnutls_pubkey_import_x509_crq")
        try checkIdentity(gnutls_x509_crt_set_pubkey(handle, publicKey), "gnutls_x509_crt_set_pubkey")
        try checkIdentity(gnutls_x509_crt_set_basic_constraints(handle, 0, -1), "gnutls_x509_crt_set_basic_constraints")
        try checkIdentity(gnutls_x509_crt_set_key_usage(handle, UInt32(GNUTLS_KEY_DIGITAL_SIGNATURE | GNUTLS_KEY_KEY_ENCIPHERMENT)), "gnutls_x509_crt_set_key_usage")
        try Self.setSubjectKeyID(certificate)
        return certificate
    }

    /// Adds the authority key identifier and signs with the CA key.
    private func sign(_ certificate: Certificate) throws(IdentityError) -> Certificate {
        if let authorityKeyID = self.certificate.subjectKeyID {
            try checkIdentity(gnutls_x509_crt_set_authority_key_id(certificate.handle, authorityKeyID, authorityKeyID.count), "gnutls_x509_crt_set_authority_key_id")
        }
        try checkIdentity(gnutls_x509_crt_sign2(certificate.handle, self.certificate.handle, key.handle, GNUTLS_DIG_SHA256, 0), "gnutls_x509_crt_sign2")
        return try Self.encoded(certificate)
    }

    /// `certificate` as read back from its DER: GnuTLS compares names in their encoded form,
    /// which a certificate built in memory only has once exported, so a freshly built CA and a
    /// certificate it signed would not verify against copies read from files.
    private static func encoded(_ certificate: Certificate) throws(IdentityError) -> Certificate {
        try Certificate(bytes: try certificate.export(.der), encoding: .der)
    }

    /// The subject key identifier GnuTLS derives from the certificate's key.
    private static func setSubjectKeyID(_ certificate: Certificate) throws(IdentityError) {
        var identifier = [UInt8](repeating: 0, count: 64)
        var size = identifier.count
        try checkIdentity(gnutls_x509_crt_get_key_id(certificate.handle, 0, &identifier, &size), "gnutls_x509_crt_get_key_id")
        try checkIdentity(gnutls_x509_crt_set_subject_key_id(certificate.handle, identifier, size), "gnutls_x509_crt_set_subject_key_id")
    }

    /// The 4 or 16 bytes of an IPv4 or IPv6 literal, nil for a DNS name.
    private static func ipAddressBytes(_ text: String) -> [UInt8]? {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 { return withUnsafeBytes(of: &v4) { Array($0) } }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, text, &v6) == 1 { return withUnsafeBytes(of: &v6) { Array($0) } }
        return nil
    }
}
