import CNGTCP2

/// An ECDSA P-256 private key (what KubeEdge's CA and nodes use), owned GnuTLS state.
public final class PrivateKey: @unchecked Sendable {
    let handle: gnutls_x509_privkey_t

    private init(handle: gnutls_x509_privkey_t) { self.handle = handle }

    deinit { gnutls_x509_privkey_deinit(handle) }

    private static func make() throws(IdentityError) -> gnutls_x509_privkey_t {
        var key: gnutls_x509_privkey_t?
        try checkIdentity(gnutls_x509_privkey_init(&key), "gnutls_x509_privkey_init")
        guard let key else { throw .gnutls("gnutls_x509_privkey_init", "no key") }
        return key
    }

    /// A new random P-256 key.
    public static func generate() throws(IdentityError) -> PrivateKey {
        let key = PrivateKey(handle: try make())
        // GNUTLS_CURVE_TO_BITS: the curve, flagged, in place of a bit count.
        let bits = UInt32(1) << 31 | UInt32(GNUTLS_ECC_CURVE_SECP256R1.rawValue)
        try checkIdentity(gnutls_x509_privkey_generate2(key.handle, GNUTLS_PK_ECDSA, bits, 0, nil, 0), "gnutls_x509_privkey_generate2")
        return key
    }

    /// Reads a key (PKCS#8 or SEC 1; PEM or DER).
    public convenience init(bytes: [UInt8], encoding: IdentityEncoding = .pem) throws(IdentityError) {
        let handle = try Self.make()
        self.init(handle: handle)
        try withDatum(bytes) { datum throws(IdentityError) in
            try checkIdentity(gnutls_x509_privkey_import(handle, datum, encoding.gnutls), "gnutls_x509_privkey_import")
        }
    }

    /// The key as unencrypted PKCS#8.
    public func export(_ encoding: IdentityEncoding = .pem) throws(IdentityError) -> [UInt8] {
        try takeDatum("gnutls_x509_privkey_export2_pkcs8") {
            gnutls_x509_privkey_export2_pkcs8(handle, encoding.gnutls, nil, UInt32(GNUTLS_PKCS_PLAIN.rawValue), $0)
        }
    }
}
