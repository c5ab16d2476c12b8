/// Bytes as lowercase hexadecimal text, two digits per byte: digests, fingerprints, random tokens.
///
/// Written directly into the string's storage; `String(format: "%02x")` per byte goes through
/// Foundation's formatter and cost a tenth of cloudcore's CPU when every object sent to an edge
/// was fingerprinted that way.
public enum LowercaseHex {
    private static let digits: [UInt8] = Array("0123456789abcdef".utf8)

    /// `bytes` as lowercase hex.
    public static func encode(_ bytes: some Collection<UInt8>) -> String {
        String(unsafeUninitializedCapacity: bytes.count * 2) { buffer in
            var position = 0
            for byte in bytes {
                buffer[position] = digits[Int(byte >> 4)]
                buffer[position + 1] = digits[Int(byte & 0x0F)]
                position += 2
            }
            return position
        }
    }
}
