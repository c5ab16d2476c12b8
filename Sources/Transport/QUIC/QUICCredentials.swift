import CNGTCP2

/// GnuTLS certificate credentials loaded from the same PEM files as the WebSocket backend
/// (``TLSFiles``): this side's chain and key, and the CA that peers' certificates must chain to.
/// Shared by every connection of an endpoint; freed with the last of them.
final class QUICCredentials: @unchecked Sendable {
    let handle: gnutls_certificate_credentials_t

    init(_ files: TLSFiles) throws(QUICError) {
        var credentials: gnutls_certificate_credentials_t?
        try checkGnuTLS(gnutls_certificate_allocate_credentials(&credentials), "gnutls_certificate_allocate_credentials")
        guard let credentials else { throw QUICError.gnutls("gnutls_certificate_allocate_credentials", GNUTLS_E_MEMORY_ERROR) }
        handle = credentials
        let key = gnutls_certificate_set_x509_key_file(credentials, files.certificateChain, files.privateKey, GNUTLS_X509_FMT_PEM)
        guard key >= 0 else {
            throw QUICError.credentials(path: files.certificateChain, message: String(cString: gnutls_strerror(key)))
        }
        let trusted = gnutls_certificate_set_x509_trust_file(credentials, files.trustRoots, GNUTLS_X509_FMT_PEM)
        guard trusted > 0 else {
            let message = trusted < 0 ? String(cString: gnutls_strerror(trusted)) : "no certificate in the file"
            throw QUICError.credentials(path: files.trustRoots, message: message)
        }
    }

    deinit { gnutls_certificate_free_credentials(handle) }
}
