import CNGTCP2

/// A PKCS#10 certificate signing request, owned GnuTLS state: what an edge sends to join.
public final class CertificateSigningRequest: @unchecked Sendable {
    let handle: gnutls_x509_crq_t

    private init() throws(IdentityError) {
        var request: gnutls_x509_crq_t?
        try checkIdentity(gnutls_x509_crq_init(&request), "gnutls_x509_crq_init")
        guard let request else { throw .gnutls("gnutls_x509_crq_init", "no request") }
        handle = request
    }

    deinit { gnutls_x509_crq_deinit(handle) }

    /// A request for `commonName` (and `organization`), signed with `key`.
    public convenience init(commonName: String, organization: String? = nil, key: PrivateKey) throws(IdentityError) {
        try self.init()
        try checkIdentity(gnutls_x509_crq_set_version(handle, 1), "gnutls_x509_crq_set_version")
        try setName(GNUTLS_OID_X520_COMMON_NAME, commonName)
        if let organization { try setName(GNUTLS_OID_X520_ORGANIZATION_NAME, organization) }
        try checkIdentity(gnutls_x509_crq_set_key(handle, key.handle), "gnutls_x509_crq_set_key")
        try checkIdentity(gnutls_x509_crq_sign2(handle, key.handle, GNUTLS_DIG_SHA256, 0), "gnutls_x509_crq_sign2")
    }

    /// Reads a request (PEM or DER) and checks its self-signature, which proves the sender
    /// holds the key.
    public convenience init(bytes: [UInt8], encoding: IdentityEncoding = .der) throws(IdentityError) {
        try self.init()
        let handle = handle
        try withDatum(bytes) { datum throws(IdentityError) in
            try checkIdentity(gnutls_x509_crq_import(handle, datum, encoding.gnutls), "gnutls_x509_crq_import")
        }
        try checkIdentity(gnutls_x509_crq_verify(handle, 0), "gnutls_x509_crq_verify")
    }

    private func setName(_ oid: String, _ value: String) throws(IdentityError) {
        let bytes = Array(value.utf8)
        try checkIdentity(gnutls_x509_crq_set_dn_by_oid(handle, oid, 0, bytes, UInt32(bytes.count)), "gnutls_x509_crq_set_dn_by_oid")
    }

    /// The subject's common name (empty if it has none).
    public var commonName: String {
        readName { gnutls_x509_crq_get_dn_by_oid(handle, GNUTLS_OID_X520_COMMON_NAME, 0, 0, $0, $1) }
    }

    /// The request, encoded.
    public func export(_ encoding: IdentityEncoding = .der) throws(IdentityError) -> [UInt8] {
        try takeDatum("gnutls_x509_crq_export2") { gnutls_x509_crq_export2(handle, encoding.gnutls, $0) }
    }
}
