import Foundation
import CNGTCP2

/// SHA-256 through GnuTLS (already linked for TLS): content digests, not secrets.
public enum SHA256 {
    /// The digest of `bytes` as lowercase hex.
    public static func hex(_ bytes: some Collection<UInt8>) -> String {
        var digest = [UInt8](repeating: 0, count: 32)
        let input = Array(bytes)
        let result = input.withUnsafeBytes { raw in
            digest.withUnsafeMutableBytes { gnutls_hash_fast(GNUTLS_DIG_SHA256, raw.baseAddress, raw.count, $0.baseAddress) }
        }
        // GnuTLS fails only without SHA-256 support, which TLS 1.3 itself needs.
        precondition(result == 0, "gnutls_hash_fast(SHA-256) failed: \(result)")
        return LowercaseHex.encode(digest)
    }

    /// The digest of `text`'s UTF-8 as lowercase hex.
    public static func hex(_ text: String) -> String { hex(Array(text.utf8)) }
}
