import CNGTCP2

// ES256 (ECDSA P-256 with SHA-256, signature as the 64 bytes r ‖ s, RFC 7518 §3.4) with the CA's
// key and certificate: what bootstrap tokens are signed with.

extension PrivateKey {
    /// Signs `data` with ES256: 64 bytes, r then s, each left-padded to 32.
    func signES256(_ data: [UInt8]) throws(IdentityError) -> [UInt8] {
        var signer: gnutls_privkey_t?
        try checkIdentity(gnutls_privkey_init(&signer), "gnutls_privkey_init")
        defer { gnutls_privkey_deinit(signer) }
        try checkIdentity(gnutls_privkey_import_x509(signer, handle, 0), "gnutls_privkey_import_x509")
        let der = try withDatum(data) { datum throws(IdentityError) in
            try takeDatum("gnutls_privkey_sign_data") { gnutls_privkey_sign_data(signer, GNUTLS_DIG_SHA256, 0, datum, $0) }
        }
        return try withDatum(der) { datum throws(IdentityError) -> [UInt8] in
            var r = gnutls_datum_t()
            var s = gnutls_datum_t()
            try checkIdentity(gnutls_decode_rs_value(datum, &r, &s), "gnutls_decode_rs_value")
            defer {
                cgnutls_free_datum(&r)
                cgnutls_free_datum(&s)
            }
            return try Self.fixedWidth(r) + Self.fixedWidth(s)
        }
    }

    /// A DER INTEGER's magnitude as exactly 32 bytes.
    private static func fixedWidth(_ datum: gnutls_datum_t) throws(IdentityError) -> [UInt8] {
        var bytes = datum.data.map { Array(UnsafeBufferPointer(start: $0, count: Int(datum.size))) } ?? []
        while bytes.count > 32, bytes.first == 0 { bytes.removeFirst() }
        guard bytes.count <= 32 else { throw .invalid("an ECDSA signature value is longer than 32 bytes") }
        return [UInt8](repeating: 0, count: 32 - bytes.count) + bytes
    }
}

extension Certificate {
    /// Whether `signature` (ES256, 64 bytes) over `data` was made with this certificate's key.
    func verifiesES256(_ signature: [UInt8], over data: [UInt8]) -> Bool {
        guard signature.count == 64 else { return false }
        var publicKey: gnutls_pubkey_t?
        guard gnutls_pubkey_init(&publicKey) >= 0 else { return false }
        defer { gnutls_pubkey_deinit(publicKey) }
        guard gnutls_pubkey_import_x509(publicKey, handle, 0) >= 0 else { return false }
        let verified = try? withDatum(Array(signature[..<32])) { r throws(IdentityError) -> Bool in
            try withDatum(Array(signature[32...])) { s throws(IdentityError) -> Bool in
                var der = gnutls_datum_t()
                guard gnutls_encode_rs_value(&der, r, s) >= 0 else { return false }
                defer { cgnutls_free_datum(&der) }
                return try withDatum(data) { message throws(IdentityError) -> Bool in
                    gnutls_pubkey_verify_data2(publicKey, GNUTLS_SIGN_ECDSA_SHA256, 0, message, &der) >= 0
                }
            }
        }
        return verified ?? false
    }
}
