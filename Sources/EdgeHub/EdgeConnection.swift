import Transport

/// An open connection to the cloud on either backend.
struct EdgeConnection: Sendable {
    let backend: TransportBackend
    private let closedBody: @Sendable () async -> Void
    private let dropBody: @Sendable () async -> Void

    init(_ connection: QUICChannelConnection) {
        backend = .quic
        closedBody = { await connection.closed() }
        dropBody = { await connection.drop() }
    }

    init(_ connection: WebSocketConnection) {
        backend = .webSocket
        closedBody = { await connection.closed() }
        dropBody = { await connection.drop() }
    }

    /// Returns when the connection has closed.
    func closed() async { await closedBody() }
    /// Closes the connection abruptly.
    func drop() async { await dropBody() }
}
