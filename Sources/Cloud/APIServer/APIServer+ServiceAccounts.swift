import Foundation
import KubeModel
import NIOCore

/// Service accounts as kube-apiserver and its controllers keep them: a `default` account and a
/// `kube-root-ca.crt` ConfigMap in every namespace, tokens through the TokenRequest API
/// (`serviceaccounts/{name}/token`, `kubectl create token`), and TokenReview.
extension APIServer {
    /// Creates what every namespace has when it is missing: the `default` ServiceAccount, and
    /// with TLS the `kube-root-ca.crt` ConfigMap holding the CA certificate.
    func ensureNamespaceDefaults(_ namespace: String) async throws {
        let account = ObjectKey(resource: "serviceaccounts", namespace: namespace, name: "default")
        if try await store.get(account) == nil {
            _ = try? await store.create(account, .object(JSONObject([
                ("apiVersion", .string("v1")), ("kind", .string("ServiceAccount")),
                ("metadata", .object(JSONObject([("name", .string("default")), ("namespace", .string(namespace))]))),
            ])))
        }
        guard let certificate = configuration.security?.rootCertificate, !certificate.isEmpty else { return }
        let rootCA = ObjectKey(resource: "configmaps", namespace: namespace, name: "kube-root-ca.crt")
        if try await store.get(rootCA) == nil {
            _ = try? await store.create(rootCA, .object(JSONObject([
                ("apiVersion", .string("v1")), ("kind", .string("ConfigMap")),
                ("metadata", .object(JSONObject([("name", .string("kube-root-ca.crt")), ("namespace", .string(namespace))]))),
                ("data", .object(JSONObject([("ca.crt", .string(certificate))]))),
            ])))
        }
    }

    /// `POST serviceaccounts/{name}/token`: a TokenRequest answered with a signed token for
    /// the account (bound to a pod when `spec.boundObjectRef` names one).
    func requestToken(_ route: APIRoute, request: JSONValue) async throws -> JSONValue {
        guard let signer = configuration.security?.serviceAccountSigner else {
            throw APIError(code: 404, reason: "NotFound", message: "the server could not find the requested resource")
        }
        guard let key = route.key, let account = try await store.get(key) else {
            throw APIError.notFound("serviceaccounts", route.name ?? "")
        }
        var review = request
        guard case .object = review else { throw APIError.badRequest("the body must be a JSON object") }
        let expiration = review[path: ["spec", "expirationSeconds"]]?.int64Value ?? Int64(ServiceAccountTokens.defaultExpiration)
        guard expiration >= Int64(ServiceAccountTokens.minimumExpiration) else {
            throw APIError.invalid("TokenRequest.authentication.k8s.io \"\(key.name)\" is invalid: spec.expirationSeconds: Invalid value: \(expiration): "
                                   + "may not specify a duration less than 10 minutes")
        }
        guard expiration <= 1 << 32 else {
            throw APIError.invalid("TokenRequest.authentication.k8s.io \"\(key.name)\" is invalid: spec.expirationSeconds: Invalid value: \(expiration): "
                                   + "may not specify a duration larger than 2^32 seconds")
        }
        let asked = review[path: ["spec", "audiences"]]?.arrayValue?.compactMap(\.stringValue) ?? []
        let audiences = asked.isEmpty ? [ServiceAccountTokens.issuer] : asked
        var pod: (name: String, uid: String)?
        if let bound = review[path: ["spec", "boundObjectRef"]], case .object = bound {
            guard bound["kind"]?.stringValue == "Pod" else {
                throw APIError.badRequest("cannot bind token to object of kind \(bound["kind"]?.stringValue ?? ""): only Pod is supported")
            }
            let name = bound["name"]?.stringValue ?? ""
            guard let object = try await store.get(ObjectKey(resource: "pods", namespace: key.namespace, name: name)) else {
                throw APIError.notFound("pods", name)
            }
            let uid = object[path: ["metadata", "uid"]]?.stringValue ?? ""
            if let given = bound["uid"]?.stringValue, !given.isEmpty, given != uid {
                throw APIError(code: 409, reason: "Conflict", message: "the UID in the bound object reference (\(given)) does not match the UID in record. The object might have been deleted and then recreated")
            }
            pod = (name, uid)
        }
        let now = Date()
        let expiry = now.addingTimeInterval(TimeInterval(expiration))
        let claims = ServiceAccountTokens.Claims(namespace: key.namespace, name: key.name, uid: account[path: ["metadata", "uid"]]?.stringValue ?? "",
                                                 audiences: audiences, expiry: expiry, pod: pod)
        let token = try ServiceAccountTokens(signer: signer).issue(claims, now: now)
        review["apiVersion"] = .string("authentication.k8s.io/v1")
        review["kind"] = .string("TokenRequest")
        review.set(.string(key.name), at: ["metadata", "name"])
        review.set(.string(key.namespace), at: ["metadata", "namespace"])
        review.set(.array(audiences.map { .string($0) }), at: ["spec", "audiences"])
        review.set(.integer(expiration), at: ["spec", "expirationSeconds"])
        review["status"] = .object(JSONObject([("token", .string(token)), ("expirationTimestamp", .string(expiry.formatted(.iso8601)))]))
        return review
    }

    /// `POST tokenreviews`: whether a token authenticates, and as whom, for the audiences asked
    /// (the API server's own when none).
    func reviewToken(_ request: JSONValue) async throws -> JSONValue {
        var review = request
        guard case .object = review else { throw APIError.badRequest("the body must be a JSON object") }
        review["apiVersion"] = .string("authentication.k8s.io/v1")
        review["kind"] = .string("TokenReview")
        let token = review[path: ["spec", "token"]]?.stringValue ?? ""
        let asked = review[path: ["spec", "audiences"]]?.arrayValue?.compactMap(\.stringValue) ?? []
        let audiences = asked.isEmpty ? [ServiceAccountTokens.issuer] : asked
        var user = configuration.security?.tokens[token]
        if user == nil { user = await serviceAccountUser(token: token, audiences: audiences) }
        guard let user else {
            review["status"] = .object(JSONObject([("authenticated", .bool(false)), ("user", .object(JSONObject())),
                                                   ("error", .string("[invalid bearer token, token lookup failed]"))]))
            return review
        }
        review["status"] = .object(JSONObject([
            ("authenticated", .bool(true)),
            ("user", user.reviewJSON),
            ("audiences", .array(audiences.map { .string($0) })),
        ]))
        return review
    }
}
