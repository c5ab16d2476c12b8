import NIOHTTP1
import Synchronization

/// What the HTTPS certificate endpoint answered and refused since it started.
public struct CertificateEndpointCounters: Sendable, Equatable {
    /// Requests answered 200 (the CA certificate, or a node certificate issued).
    public var answered = 0
    /// Requests refused for a missing, forged, expired or foreign token, or no certificate (401).
    public var refusedUnauthorized = 0
    /// Requests refused because a node asked for another node's certificate (403).
    public var refusedForbidden = 0
    /// Requests refused as malformed, too large, or for an unknown path or method.
    public var refusedMalformed = 0
    /// Connections closed on accept because `https.maxConnections` was reached.
    public var connectionsOverLimit = 0
    /// Connections closed because no whole request arrived within `https.requestTimeout`.
    public var requestTimeouts = 0

    /// Every request refused, whatever the reason.
    public var refused: Int { refusedUnauthorized + refusedForbidden + refusedMalformed }

    mutating func record(_ status: HTTPResponseStatus) {
        switch status {
        case .ok: answered += 1
        case .unauthorized: refusedUnauthorized += 1
        case .forbidden: refusedForbidden += 1
        default: refusedMalformed += 1
        }
    }
}

/// ``CertificateEndpointCounters`` shared by the endpoint and its connections' handlers.
final class CertificateEndpointCounterBox: Sendable {
    private let value = Mutex(CertificateEndpointCounters())

    @discardableResult
    func update<T>(_ body: (inout CertificateEndpointCounters) -> T) -> T { value.withLock { body(&$0) } }

    var snapshot: CertificateEndpointCounters { value.withLock { $0 } }
}

/// Refusals are all counted, but logged one by one only for the first 100; after that one line
/// in 1,000 (with the count so far), so that a flood of refused requests is not also a flood
/// of log lines.
enum RefusalLogThrottle {
    static func shouldLog(_ count: Int) -> Bool { count <= 100 || count % 1_000 == 0 }
}
