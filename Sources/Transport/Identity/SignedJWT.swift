/// Compact JWTs signed ES256 with a ``CertificateAuthority``'s key and checked with its
/// certificate: the claims are the caller's JSON, untouched here (the caller checks them).
public enum SignedJWT {
    /// `header.claims.signature` over `claims` (a JSON object's bytes), with key id `keyID`.
    public static func sign(claims: [UInt8], keyID: String, with authority: CertificateAuthority) throws(IdentityError) -> String {
        let header = BootstrapToken.base64URL(Array(#"{"alg":"ES256","kid":"\#(keyID)"}"#.utf8))
        let signed = header + "." + BootstrapToken.base64URL(claims)
        return signed + "." + BootstrapToken.base64URL(try authority.key.signES256(Array(signed.utf8)))
    }

    /// The claims of `token` when it is a compact JWT whose ES256 signature `authority`'s
    /// certificate verifies; `nil` otherwise (a token of another kind, or forged).
    public static func verifiedClaims(of token: String, by authority: CertificateAuthority) -> [UInt8]? {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, let header = BootstrapToken.decodeBase64URL(parts[0]), let claims = BootstrapToken.decodeBase64URL(parts[1]),
              let signature = BootstrapToken.decodeBase64URL(parts[2]), String(decoding: header, as: UTF8.self).contains(#""alg":"ES256""#)
        else { return nil }
        guard authority.certificate.verifiesES256(signature, over: Array("\(parts[0]).\(parts[1])".utf8)) else { return nil }
        return claims
    }
}
