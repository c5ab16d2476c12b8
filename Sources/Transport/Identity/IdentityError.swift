import CNGTCP2

/// Why a key, certificate request or certificate could not be made, read or checked.
public enum IdentityError: Error, Equatable, CustomStringConvertible {
    /// A GnuTLS call failed: the call and GnuTLS's message.
    case gnutls(String, String)
    /// The input is not what was expected (wrong name, not a node certificate request, …).
    case invalid(String)

    public var description: String {
        switch self {
        case .gnutls(let call, let message): "\(call) failed: \(message)"
        case .invalid(let reason): reason
        }
    }
}

/// Throws ``IdentityError/gnutls(_:_:)`` for a negative GnuTLS result.
@inline(__always)
func checkIdentity(_ result: Int32, _ call: String) throws(IdentityError) {
    guard result >= 0 else { throw .gnutls(call, String(cString: gnutls_strerror(result))) }
}

/// Reads a GnuTLS-allocated datum into bytes and frees it.
func takeDatum(_ call: String, _ body: (UnsafeMutablePointer<gnutls_datum_t>) -> Int32) throws(IdentityError) -> [UInt8] {
    var datum = gnutls_datum_t()
    try checkIdentity(body(&datum), call)
    defer { cgnutls_free_datum(&datum) }
    guard let data = datum.data else { return [] }
    return Array(UnsafeBufferPointer(start: data, count: Int(datum.size)))
}

/// Calls `body` with a datum that points at `bytes` (valid only during the call).
func withDatum<T>(_ bytes: [UInt8], _ body: (UnsafePointer<gnutls_datum_t>) throws(IdentityError) -> T) throws(IdentityError) -> T {
    var copy = bytes
    return try copy.withUnsafeMutableBufferPointer { (buffer: inout UnsafeMutableBufferPointer<UInt8>) throws(IdentityError) -> T in
        var datum = gnutls_datum_t(data: buffer.baseAddress, size: UInt32(buffer.count))
        return try body(&datum)
    }
}

/// The encodings keys and certificates are read from and written in.
public enum IdentityEncoding: Sendable {
    case pem
    case der

    var gnutls: gnutls_x509_crt_fmt_t { self == .pem ? GNUTLS_X509_FMT_PEM : GNUTLS_X509_FMT_DER }
}

/// A distinguished-name attribute read through `get` (GnuTLS's `*_get_dn_by_oid`), asking again
/// with the size GnuTLS reports when the first buffer is too small; empty if absent.
func readName(_ get: (UnsafeMutableRawPointer, UnsafeMutablePointer<Int>) -> Int32) -> String {
    var size = 128
    for _ in 0..<2 {
        var buffer = [UInt8](repeating: 0, count: size)
        let result = buffer.withUnsafeMutableBytes { get($0.baseAddress!, &size) }
        if result == GNUTLS_E_SHORT_MEMORY_BUFFER { continue }
        guard result >= 0 else { return "" }
        return String(decoding: buffer.prefix(size), as: UTF8.self)
    }
    return ""
}
