import NIOCore

/// The transport a connection arrived on.
public enum TransportBackend: String, Sendable, Hashable, CustomStringConvertible {
    /// QUIC over UDP (ngtcp2 + GnuTLS).
    case quic
    /// WebSocket over TLS over TCP (SwiftNIO + NIOSSL).
    case webSocket = "websocket"

    public var description: String { rawValue }
}

/// What a server knows about a new connection when its opening HELLO arrives: the HELLO, the
/// certificate the peer authenticated with in the TLS handshake, and where it came from.
public struct SessionRequest: Sendable {
    /// The peer's HELLO. Its node id is a claim; ``peerCertificate`` is the proof.
    public var hello: Hello
    /// The DER bytes of the leaf certificate the peer presented (mutual TLS), if any. The TLS
    /// layer has verified it against the server's trust roots before the HELLO is read.
    public var peerCertificate: [UInt8]?
    /// The peer's address, if the backend knows it.
    public var remoteAddress: SocketAddress?
    /// The backend the connection arrived on.
    public var backend: TransportBackend

    /// Creates a request (servers build these; tests may too).
    public init(hello: Hello, peerCertificate: [UInt8]?, remoteAddress: SocketAddress?, backend: TransportBackend) {
        self.hello = hello
        self.peerCertificate = peerCertificate
        self.remoteAddress = remoteAddress
        self.backend = backend
    }
}

/// A server's answer to a ``SessionRequest``.
public enum SessionDecision: Sendable {
    /// Attach the connection to this channel.
    case accept(MessageChannel)
    /// Send this GOAWAY (its reason is what the peer sees) and close the connection.
    case refuse(GoAway)

    /// Accepts `channel`, or refuses the request's node as unknown when it is `nil`.
    public static func accepting(_ channel: MessageChannel?, for request: SessionRequest) -> SessionDecision {
        guard let channel else {
            return .refuse(GoAway(code: .unauthorized, reason: "node \(request.hello.nodeID) is not known here"))
        }
        return .accept(channel)
    }
}

/// Maps each new server-side connection to its channel, or refuses it. Called on the
/// connection's event loop, once per connection: keep it fast and never block.
public typealias SessionResolver = @Sendable (SessionRequest) -> SessionDecision
