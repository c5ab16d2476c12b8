import Foundation
import KubeModel
import Synchronization

/// The service-account tokens of the pods' projected volumes, as kubelet's token manager keeps
/// them, with the edge's offline rule added:
/// - A volume asks with ``token(for:now:stored:)``, which never waits on the network: it answers
///   the token held, or the one already in the volume (after an edgecore restart), while it has
///   not expired; otherwise the volume waits (`ContainerCreating`) for the first token.
/// - Edged's token loop asks the cloud for each token that is ``due(now:)``: none held yet, or
///   80 % of its life gone; a failed request is tried again after ``retryInterval``.
/// - Offline, a token is used until it expires, and never past that.
public final class ServiceAccountTokenManager: Sendable {
    /// One token a pod's volume needs.
    public struct Request: Hashable, Sendable {
        public var namespace: String
        public var account: String
        /// The projection's `audience`; empty for the API server's own.
        public var audience: String
        public var expirationSeconds: Int64
        public var podName: String
        public var podUID: String

        public init(namespace: String, account: String, audience: String, expirationSeconds: Int64, podName: String, podUID: String) {
            (self.namespace, self.account, self.audience, self.expirationSeconds, self.podName, self.podUID) =
                (namespace, account, audience, expirationSeconds, podName, podUID)
        }

        /// The `TokenRequest` the cloud is sent, bound to the pod.
        public var tokenRequest: JSONValue {
            var spec = JSONObject([
                ("expirationSeconds", .integer(expirationSeconds)),
                ("boundObjectRef", .object(JSONObject([
                    ("kind", .string("Pod")), ("apiVersion", .string("v1")), ("name", .string(podName)), ("uid", .string(podUID)),
                ]))),
            ])
            if !audience.isEmpty { spec["audiences"] = .array([.string(audience)]) }
            return .object(JSONObject([
                ("apiVersion", .string("authentication.k8s.io/v1")), ("kind", .string("TokenRequest")),
                ("metadata", .object(JSONObject([("name", .string(account)), ("namespace", .string(namespace))]))),
                ("spec", .object(spec)),
            ]))
        }
    }

    /// A token and its life, from its own claims.
    public struct Token: Sendable, Equatable {
        public var text: String
        public var issued: Date
        public var expires: Date

        /// When kubelet renews it: at 80 % of its life.
        public var refreshAt: Date { issued.addingTimeInterval(expires.timeIntervalSince(issued) * 0.8) }

        /// A JWT's `iat` and `exp`; `nil` for anything else.
        public init?(jwt: String) {
            let parts = jwt.split(separator: ".", omittingEmptySubsequences: false)
            guard parts.count == 3, let payload = Self.base64URLDecoded(parts[1]),
                  let claims = try? JSONValue(parsing: payload),
                  let issued = claims["iat"]?.int64Value, let expires = claims["exp"]?.int64Value, expires > issued else { return nil }
            text = jwt
            self.issued = Date(timeIntervalSince1970: TimeInterval(issued))
            self.expires = Date(timeIntervalSince1970: TimeInterval(expires))
        }

        private static func base64URLDecoded(_ text: Substring) -> [UInt8]? {
            var base64 = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
            base64 += String(repeating: "=", count: (4 - base64.count % 4) % 4)
            return Data(base64Encoded: base64).map { Array($0) }
        }
    }

    /// How long after a failed request the token is asked for again. Default 10 s.
    public let retryInterval: TimeInterval

    private struct State {
        var tokens: [Request: Token] = [:]
        /// What volumes asked for, and when they last did (tokens not asked for in a while are dropped).
        var wanted: [Request: Date] = [:]
        /// The last failed request of each token: when, and why.
        var failures: [Request: (at: Date, reason: String)] = [:]
    }
    private let state = Mutex(State())
    /// Called when a volume asks for a token nobody asked for before (to wake the token loop).
    private let onNewRequest: @Sendable () -> Void

    public init(retryInterval: TimeInterval = 10, onNewRequest: @escaping @Sendable () -> Void = {}) {
        self.retryInterval = retryInterval
        self.onNewRequest = onNewRequest
    }

    /// The token for `request` if one that has not expired is held (or is `stored` in the
    /// volume already); why not otherwise. Records that the token is wanted.
    public func token(for request: Request, now: Date, stored: () -> String?) -> Result<String, ContainerRuntimeError> {
        let (held, isNew) = state.withLock { state -> (Token?, Bool) in
            let isNew = state.wanted.updateValue(now, forKey: request) == nil
            return (state.tokens[request], isNew)
        }
        if isNew { onNewRequest() }
        if let held, held.expires > now { return .success(held.text) }
        if let text = stored(), let token = Token(jwt: text), token.expires > now {
            state.withLock { $0.tokens[request] = token }
            return .success(token.text)
        }
        let failure = state.withLock { $0.failures[request] }
        let why = failure.map { ": the last request failed: \($0.reason)" } ?? ""
        return .failure(ContainerRuntimeError(reason: "ContainerCreating",
                                              message: "waiting for a token of service account \(request.namespace)/\(request.account) from the cloud\(why)"))
    }

    /// The tokens to ask the cloud for now: wanted, and none held or past 80 % of its life, and
    /// not refused within ``retryInterval``. Tokens no volume asked for in 10 minutes are dropped.
    public func due(now: Date) -> [Request] {
        state.withLock { state in
            for (request, asked) in state.wanted where now.timeIntervalSince(asked) > 600 {
                state.wanted[request] = nil
                state.tokens[request] = nil
                state.failures[request] = nil
            }
            return state.wanted.keys.filter { request in
                if let failure = state.failures[request], now.timeIntervalSince(failure.at) < retryInterval { return false }
                guard let token = state.tokens[request] else { return true }
                return now >= token.refreshAt
            }
        }
    }

    /// When the next token will be due (``due(now:)`` not empty), if any is wanted.
    public func nextDue() -> Date? {
        state.withLock { state in
            state.wanted.keys.map { request -> Date in
                let retry = state.failures[request].map { $0.at.addingTimeInterval(retryInterval) } ?? .distantPast
                return max(retry, state.tokens[request]?.refreshAt ?? .distantPast)
            }.min()
        }
    }

    /// Takes the cloud's answer to `request`; whether it held a usable token.
    @discardableResult
    public func received(_ text: String, for request: Request, now: Date) -> Bool {
        guard let token = Token(jwt: text), token.expires > now else {
            failed(request, reason: "the cloud answered with no token that is valid now", now: now)
            return false
        }
        state.withLock { state in
            state.tokens[request] = token
            state.failures[request] = nil
        }
        return true
    }

    /// Records a failed request; the token held (if any) stays in use until it expires.
    public func failed(_ request: Request, reason: String, now: Date) {
        state.withLock { $0.failures[request] = (now, reason) }
    }

    /// Forgets the tokens of a pod that is gone.
    public func forget(podUID: String) {
        state.withLock { state in
            for request in state.wanted.keys where request.podUID == podUID {
                state.wanted[request] = nil
                state.tokens[request] = nil
                state.failures[request] = nil
            }
        }
    }

    /// The service account a pod runs as: `spec.serviceAccountName`, then the deprecated
    /// `spec.serviceAccount`, then `default`.
    public static func accountName(of pod: Kube.Pod) -> String {
        for field in ["serviceAccountName", "serviceAccount"] {
            if let name = pod.json[path: ["spec", field]]?.stringValue, !name.isEmpty { return name }
        }
        return "default"
    }

    /// The token held for `request` (tests and status).
    public func held(_ request: Request) -> Token? { state.withLock { $0.tokens[request] } }
}
