import CNGTCP2
import Foundation

/// The `Sec-WebSocket-Accept` value that answers a `Sec-WebSocket-Key` (RFC 6455 §4.2.2):
/// base64 of the SHA-1 of the key and the protocol's GUID, SHA-1 through GnuTLS.
public enum WebSocketAccept {
    public static func value(forKey key: String) -> String {
        let input = Array((key.trimmingCharacters(in: .whitespaces) + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").utf8)
        var digest = [UInt8](repeating: 0, count: 20)
        let result = input.withUnsafeBytes { raw in
            digest.withUnsafeMutableBytes { gnutls_hash_fast(GNUTLS_DIG_SHA1, raw.baseAddress, raw.count, $0.baseAddress) }
        }
        precondition(result == 0, "gnutls_hash_fast(SHA-1) failed: \(result)")
        return Data(digest).base64EncodedString()
    }
}
