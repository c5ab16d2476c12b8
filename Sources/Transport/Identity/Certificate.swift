import CNGTCP2
import Foundation

/// An X.509 certificate, owned GnuTLS state.
public final class Certificate: @unchecked Sendable {
    let handle: gnutls_x509_crt_t

    init() throws(IdentityError) {
        var certificate: gnutls_x509_crt_t?
        try checkIdentity(gnutls_x509_crt_init(&certificate), "gnutls_x509_crt_init")
        guard let certificate else { throw .gnutls("gnutls_x509_crt_init", "no certificate") }
        handle = certificate
    }

    deinit { gnutls_x509_crt_deinit(handle) }

    /// Reads a certificate (the first of a PEM file, or DER).
    public convenience init(bytes: [UInt8], encoding: IdentityEncoding = .pem) throws(IdentityError) {
        try self.init()
        let handle = handle
        try withDatum(bytes) { datum throws(IdentityError) in
            try checkIdentity(gnutls_x509_crt_import(handle, datum, encoding.gnutls), "gnutls_x509_crt_import")
        }
    }

    /// The certificate, encoded.
    public func export(_ encoding: IdentityEncoding = .pem) throws(IdentityError) -> [UInt8] {
        try takeDatum("gnutls_x509_crt_export2") { gnutls_x509_crt_export2(handle, encoding.gnutls, $0) }
    }

    /// The subject's common name (empty if it has none).
    public var commonName: String { name(GNUTLS_OID_X520_COMMON_NAME) }
    /// The subject's organization (empty if it has none).
    public var organization: String { name(GNUTLS_OID_X520_ORGANIZATION_NAME) }

    private func name(_ oid: String) -> String {
        readName { gnutls_x509_crt_get_dn_by_oid(handle, oid, 0, 0, $0, $1) }
    }

    /// Start and end of validity.
    public var notBefore: Date { Date(timeIntervalSince1970: TimeInterval(gnutls_x509_crt_get_activation_time(handle))) }
    public var notAfter: Date { Date(timeIntervalSince1970: TimeInterval(gnutls_x509_crt_get_expiration_time(handle))) }

    /// Whether this certificate is a CA (basic constraints).
    public var isAuthority: Bool {
        var critical: UInt32 = 0
        return gnutls_x509_crt_get_basic_constraints(handle, &critical, nil, nil) > 0
    }

    /// Whether this certificate was signed by `issuer` and is valid at `time` (signature, issuer
    /// name, validity period).
    public func isIssued(by issuer: Certificate, at time: Date = Date()) -> Bool {
        var status: UInt32 = 0
        var trusted: gnutls_x509_crt_t? = issuer.handle
        let result = gnutls_x509_crt_verify(handle, &trusted, 1, 0, &status)
        guard result >= 0, status == 0 else { return false }
        return notBefore <= time && time <= notAfter
    }

    /// The SHA-256 of the DER encoding, as lowercase hex (KubeEdge's token prefix).
    public func sha256Hex() throws(IdentityError) -> String {
        var digest = [UInt8](repeating: 0, count: 32)
        var size = digest.count
        try checkIdentity(gnutls_x509_crt_get_fingerprint(handle, GNUTLS_DIG_SHA256, &digest, &size), "gnutls_x509_crt_get_fingerprint")
        return LowercaseHex.encode(digest.prefix(size))
    }

    // MARK: building (the CA)

    func setName(_ oid: String, _ value: String) throws(IdentityError) {
        let bytes = Array(value.utf8)
        try checkIdentity(gnutls_x509_crt_set_dn_by_oid(handle, oid, 0, bytes, UInt32(bytes.count)), "gnutls_x509_crt_set_dn_by_oid")
    }

    /// Version 3, a random positive 16-byte serial, and `validity` from five minutes ago (for
    /// peers whose clocks lag a little).
    func setBasics(validity: Duration, now: Date) throws(IdentityError) {
        try checkIdentity(gnutls_x509_crt_set_version(handle, 3), "gnutls_x509_crt_set_version")
        var serial = [UInt8](repeating: 0, count: 16)
        try checkIdentity(gnutls_rnd(GNUTLS_RND_NONCE, &serial, serial.count), "gnutls_rnd")
        serial[0] &= 0x7F
        serial[0] |= 0x01
        try checkIdentity(gnutls_x509_crt_set_serial(handle, serial, serial.count), "gnutls_x509_crt_set_serial")
        let start = Int(now.timeIntervalSince1970) - 300
        try checkIdentity(gnutls_x509_crt_set_activation_time(handle, start), "gnutls_x509_crt_set_activation_time")
        try checkIdentity(
            gnutls_x509_crt_set_expiration_time(handle, Int(now.timeIntervalSince1970) + Int(validity.components.seconds)),
            "gnutls_x509_crt_set_expiration_time")
    }

    /// The subject key identifier, if the certificate has one.
    var subjectKeyID: [UInt8]? {
        var buffer = [UInt8](repeating: 0, count: 64)
        var size = buffer.count
        var critical: UInt32 = 0
        guard gnutls_x509_crt_get_subject_key_id(handle, &buffer, &size, &critical) >= 0 else { return nil }
        return Array(buffer.prefix(size))
    }
}
