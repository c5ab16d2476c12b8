import CNGTCP2

/// A failure of the QUIC backend, carrying the C library's code and message.
public enum QUICError: Error, Hashable, Sendable, CustomStringConvertible {
    /// An ngtcp2 call failed (`code` is an `NGTCP2_ERR_*` value).
    case ngtcp2(call: String, code: Int32, message: String)
    /// A GnuTLS call failed (`code` is a `GNUTLS_E_*` value).
    case gnutls(call: String, code: Int32, message: String)
    /// A certificate or key file could not be used.
    case credentials(path: String, message: String)
    /// The connection is closed; `reason` says why.
    case closed(reason: String)

    public var description: String {
        switch self {
        case .ngtcp2(let call, let code, let message): "\(call) failed: \(message) (ngtcp2 \(code))"
        case .gnutls(let call, let code, let message): "\(call) failed: \(message) (GnuTLS \(code))"
        case .credentials(let path, let message): "cannot use \(path): \(message)"
        case .closed(let reason): "QUIC connection closed: \(reason)"
        }
    }

    static func ngtcp2(_ call: String, _ code: Int32) -> QUICError {
        .ngtcp2(call: call, code: code, message: String(cString: ngtcp2_strerror(Int32(code))))
    }

    static func gnutls(_ call: String, _ code: Int32) -> QUICError {
        .gnutls(call: call, code: code, message: String(cString: gnutls_strerror(code)))
    }
}

/// Throws the GnuTLS error `result` names if it is negative.
func checkGnuTLS(_ result: Int32, _ call: String) throws(QUICError) {
    if result < 0 { throw QUICError.gnutls(call, result) }
}
