import Foundation
import KubeModel
import Transport

/// Service-account tokens as kube-apiserver issues them (the TokenRequest API): JWTs signed
/// ES256 with the server's service-account key, naming the issuer, the audiences, the expiry,
/// the service account (namespace, name, uid) and the pod they are bound to, if any.
struct ServiceAccountTokens: Sendable {
    let signer: CertificateAuthority
    /// `iss`, and the audience the API server itself accepts.
    static let issuer = "https://kubernetes.default.svc.cluster.local"
    /// The shortest life a token may be asked for (kube-apiserver's 10 minutes).
    static let minimumExpiration = 600
    /// The life of a token when the request names none (kube-apiserver's one hour).
    static let defaultExpiration = 3600

    /// What a verified token says.
    struct Claims: Sendable, Equatable {
        var namespace: String
        var name: String
        var uid: String
        var audiences: [String]
        var expiry: Date
        var pod: (name: String, uid: String)?

        static func == (lhs: Claims, rhs: Claims) -> Bool {
            lhs.namespace == rhs.namespace && lhs.name == rhs.name && lhs.uid == rhs.uid && lhs.audiences == rhs.audiences && lhs.expiry == rhs.expiry
                && lhs.pod?.name == rhs.pod?.name && lhs.pod?.uid == rhs.pod?.uid
        }

        /// The user the token authenticates as, in the groups Kubernetes gives service accounts.
        var user: UserInfo {
            .authenticated("system:serviceaccount:\(namespace):\(name)", uid: uid,
                           groups: ["system:serviceaccounts", "system:serviceaccounts:\(namespace)"])
        }
    }

    /// A signed token for the service account, living `seconds` from `now`.
    func issue(_ claims: Claims, now: Date) throws -> String {
        let issued = Int64(now.timeIntervalSince1970)
        var kubernetes = JSONObject([
            ("namespace", .string(claims.namespace)),
            ("serviceaccount", .object(JSONObject([("name", .string(claims.name)), ("uid", .string(claims.uid))]))),
        ])
        if let pod = claims.pod {
            kubernetes["pod"] = .object(JSONObject([("name", .string(pod.name)), ("uid", .string(pod.uid))]))
        }
        let payload = JSONValue.object(JSONObject([
            ("aud", .array(claims.audiences.map { .string($0) })), ("exp", .integer(Int64(claims.expiry.timeIntervalSince1970))),
            ("iat", .integer(issued)), ("iss", .string(Self.issuer)), ("jti", .string(UUID().uuidString.lowercased())),
            ("kubernetes.io", .object(kubernetes)), ("nbf", .integer(issued)),
            ("sub", .string("system:serviceaccount:\(claims.namespace):\(claims.name)")),
        ]))
        return try SignedJWT.sign(claims: payload.serializedBytes, keyID: try signer.certificate.sha256Hex(), with: signer)
    }

    /// The claims of `token` when this server signed it, for this issuer, and it is in its
    /// life at `now`; `nil` otherwise.
    func verify(_ token: String, now: Date) -> Claims? {
        guard let bytes = SignedJWT.verifiedClaims(of: token, by: signer), let payload = try? JSONValue(parsing: bytes),
              payload["iss"]?.stringValue == Self.issuer, let expiry = payload["exp"]?.int64Value,
              let namespace = payload[path: ["kubernetes.io", "namespace"]]?.stringValue,
              let name = payload[path: ["kubernetes.io", "serviceaccount", "name"]]?.stringValue
        else { return nil }
        let seconds = Int64(now.timeIntervalSince1970)
        guard seconds < expiry, (payload["nbf"]?.int64Value ?? 0) <= seconds + 60 else { return nil }
        let audiences = payload["aud"]?.arrayValue?.compactMap(\.stringValue) ?? payload["aud"]?.stringValue.map { [$0] } ?? []
        var claims = Claims(namespace: namespace, name: name, uid: payload[path: ["kubernetes.io", "serviceaccount", "uid"]]?.stringValue ?? "",
                            audiences: audiences, expiry: Date(timeIntervalSince1970: TimeInterval(expiry)))
        if let pod = payload[path: ["kubernetes.io", "pod", "name"]]?.stringValue {
            claims.pod = (pod, payload[path: ["kubernetes.io", "pod", "uid"]]?.stringValue ?? "")
        }
        return claims
    }
}
