import Foundation

/// The token an edge presents to join (KubeEdge's shape): `sha256hex(CA certificate DER)` and a
/// JWT signed ES256 with the CA key, joined by a dot. The prefix lets the edge check the CA it
/// downloads before trusting it; the JWT's `exp` bounds the token's life.
public enum BootstrapToken {
    /// The CA fingerprint a token names (what the edge compares the downloaded CA with).
    public static func caHash(of token: String) throws(IdentityError) -> String {
        guard let dot = token.firstIndex(of: "."), token.distance(from: token.startIndex, to: dot) == 64 else {
            throw .invalid("the token does not start with a CA fingerprint")
        }
        return String(token[..<dot])
    }

    /// A token from `authority`, valid for `validity` (default 24 hours).
    public static func make(authority: CertificateAuthority, validity: Duration = .seconds(86_400), now: Date = Date()) throws(IdentityError) -> String {
        let issued = Int(now.timeIntervalSince1970)
        let header = base64URL(Array(#"{"alg":"ES256","typ":"JWT"}"#.utf8))
        let claims = base64URL(Array(#"{"iat":\#(issued),"exp":\#(issued + Int(validity.components.seconds))}"#.utf8))
        let signed = "\(header).\(claims)"
        let signature = try authority.key.signES256(Array(signed.utf8))
        return "\(try authority.certificate.sha256Hex()).\(signed).\(base64URL(signature))"
    }

    /// Checks `token` against `authority`: its CA fingerprint, its ES256 signature and its
    /// expiry. Throws ``IdentityError/invalid(_:)`` saying which failed.
    public static func validate(_ token: String, authority: CertificateAuthority, now: Date = Date()) throws(IdentityError) {
        guard try caHash(of: token) == authority.certificate.sha256Hex() else { throw .invalid("the token names another CA") }
        let parts = token.split(separator: ".", omittingEmptySubsequences: false).dropFirst()
        guard parts.count == 3, let header = decodeBase64URL(parts[parts.startIndex]),
              let claims = decodeBase64URL(parts[parts.startIndex + 1]), let signature = decodeBase64URL(parts[parts.startIndex + 2])
        else { throw .invalid("the token is not a JWT") }
        guard let headerObject = try? JSONSerialization.jsonObject(with: Data(header)) as? [String: Any], headerObject["alg"] as? String == "ES256" else {
            throw .invalid("the token's JWT is not ES256")
        }
        let signed = Array("\(parts[parts.startIndex]).\(parts[parts.startIndex + 1])".utf8)
        guard authority.certificate.verifiesES256(signature, over: signed) else { throw .invalid("the token's signature does not verify") }
        guard let claimsObject = try? JSONSerialization.jsonObject(with: Data(claims)) as? [String: Any],
              let expiry = (claimsObject["exp"] as? NSNumber)?.doubleValue
        else { throw .invalid("the token has no expiry") }
        guard now.timeIntervalSince1970 < expiry else { throw .invalid("the token expired") }
    }

    static func base64URL(_ bytes: [UInt8]) -> String {
        Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    static func decodeBase64URL(_ text: Substring) -> [UInt8]? {
        var standard = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        standard += String(repeating: "=", count: (4 - standard.count % 4) % 4)
        return Data(base64Encoded: standard).map(Array.init)
    }
}
