import CNGTCP2
#if canImport(Glibc)
import Glibc
#endif

/// One GnuTLS session configured for QUIC by ngtcp2_crypto_gnutls: TLS 1.3 only, mutual
/// certificate authentication, the channel's ALPN. Owned by its ``QUICConnection``.
final class QUICTLSSession {
    let handle: gnutls_session_t
    /// Kept alive for GnuTLS, which holds the pointer given to `gnutls_session_set_verify_cert`.
    private let verifyHostname: UnsafeMutablePointer<CChar>?
    private let credentials: QUICCredentials

    /// TLS 1.3 with the AEADs QUIC defines; no middlebox compatibility mode (RFC 9001 §8.4).
    static let priority = "NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+AES-128-GCM:+AES-256-GCM:+CHACHA20-POLY1305:-GROUP-ALL:+GROUP-X25519:+GROUP-SECP256R1:+GROUP-SECP384R1:%DISABLE_TLS13_COMPAT_MODE"

    /// - Parameters:
    ///   - serverName: the client's SNI and the name the server certificate must carry; `nil` on
    ///     the server, which instead requires and verifies a client certificate.
    ///   - ticketIssuer: server side: issues session tickets and accepts 0-RTT from them.
    ///   - resumingWith: client side: the session data of a stored ticket, to resume (and send
    ///     0-RTT data) with.
    init(
        isServer: Bool, credentials: QUICCredentials, alpn: String, serverName: String?, ticketIssuer: QUICTicketIssuer? = nil,
        resumingWith sessionData: [UInt8]? = nil
    ) throws(QUICError) {
        self.credentials = credentials
        var session: gnutls_session_t?
        let flags = (isServer ? GNUTLS_SERVER.rawValue : GNUTLS_CLIENT.rawValue)
            | GNUTLS_ENABLE_EARLY_DATA.rawValue | GNUTLS_NO_END_OF_EARLY_DATA.rawValue
        try checkGnuTLS(gnutls_init(&session, flags), "gnutls_init")
        guard let session else { throw QUICError.gnutls("gnutls_init", GNUTLS_E_MEMORY_ERROR) }
        handle = session
        verifyHostname = serverName.map { strdup($0) }
        let configured = isServer
            ? ngtcp2_crypto_gnutls_configure_server_session(session)
            : ngtcp2_crypto_gnutls_configure_client_session(session)
        guard configured == 0 else { throw QUICError.gnutls("ngtcp2_crypto_gnutls_configure_session", GNUTLS_E_INTERNAL_ERROR) }
        try checkGnuTLS(gnutls_priority_set_direct(session, Self.priority, nil), "gnutls_priority_set_direct")
        try checkGnuTLS(gnutls_credentials_set(session, GNUTLS_CRD_CERTIFICATE, UnsafeMutableRawPointer(credentials.handle)), "gnutls_credentials_set")
        var protocolName = Array(alpn.utf8)
        try protocolName.withUnsafeMutableBufferPointer { (bytes) throws(QUICError) in
            var datum = gnutls_datum_t(data: bytes.baseAddress, size: UInt32(bytes.count))
            try checkGnuTLS(gnutls_alpn_set_protocols(session, &datum, 1, UInt32(GNUTLS_ALPN_MANDATORY.rawValue)), "gnutls_alpn_set_protocols")
        }
        if isServer {
            gnutls_certificate_server_set_request(session, GNUTLS_CERT_REQUIRE)
            gnutls_session_set_verify_cert(session, nil, 0)
        } else if let verifyHostname, let serverName {
            try checkGnuTLS(gnutls_server_name_set(session, GNUTLS_NAME_DNS, verifyHostname, serverName.utf8.count), "gnutls_server_name_set")
            gnutls_session_set_verify_cert(session, verifyHostname, 0)
        }
        if let ticketIssuer { try ticketIssuer.enable(on: session) }
        if let sessionData {
            let result = sessionData.withUnsafeBytes { gnutls_session_set_data(session, $0.baseAddress, $0.count) }
            try checkGnuTLS(result, "gnutls_session_set_data")
        }
    }

    deinit {
        gnutls_deinit(handle)
        free(verifyHostname)
    }

    /// Client side: whether the server asked for this side's certificate.
    var certificateWasRequested: Bool { gnutls_certificate_client_get_request_status(handle) != 0 }

    /// The DER bytes of the leaf certificate the peer authenticated with, if any. On a resumed
    /// session GnuTLS restores it from the ticket.
    var peerCertificate: [UInt8]? {
        var count: UInt32 = 0
        guard let list = gnutls_certificate_get_peers(handle, &count), count > 0, let data = list[0].data else { return nil }
        return Array(UnsafeRawBufferPointer(start: data, count: Int(list[0].size)))
    }

    /// Whether the handshake resumed a session from a ticket.
    var isResumed: Bool { gnutls_session_is_resumed(handle) != 0 }

    /// Whether the server accepted this session's 0-RTT data (client), or received some (server).
    var earlyDataAccepted: Bool { gnutls_session_get_flags(handle) & GNUTLS_SFLAGS_EARLY_DATA.rawValue != 0 }

    /// The session's resumption data once a ticket arrived (client side), else nil.
    var sessionData: [UInt8]? {
        var datum = gnutls_datum_t()
        guard gnutls_session_get_data2(handle, &datum) >= 0, let data = datum.data else { return nil }
        defer { cgnutls_free_datum(&datum) }
        return Array(UnsafeBufferPointer(start: data, count: Int(datum.size)))
    }

    /// The ALPN protocol both sides agreed on, if any.
    var negotiatedALPN: String? {
        var datum = gnutls_datum_t()
        guard gnutls_alpn_get_selected_protocol(handle, &datum) == 0, let data = datum.data else { return nil }
        return String(decoding: UnsafeBufferPointer(start: data, count: Int(datum.size)), as: UTF8.self)
    }
}
