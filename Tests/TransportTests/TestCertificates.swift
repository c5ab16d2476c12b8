import Foundation
@testable import Transport

/// A CA, a server certificate for localhost/127.0.0.1, a client certificate, and a client
/// certificate from an unrelated CA, made by `scripts/dev-certs.sh` (openssl) at test run time.
struct TestCertificates {
    let directory: String

    var server: TLSFiles { TLSFiles(certificateChain: "\(directory)/server.pem", privateKey: "\(directory)/server.key", trustRoots: "\(directory)/ca.pem") }
    var client: TLSFiles { TLSFiles(certificateChain: "\(directory)/client.pem", privateKey: "\(directory)/client.key", trustRoots: "\(directory)/ca.pem") }
    var rogueClient: TLSFiles { TLSFiles(certificateChain: "\(directory)/rogue.pem", privateKey: "\(directory)/rogue.key", trustRoots: "\(directory)/ca.pem") }

    init(directory: String) throws {
        self.directory = directory
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../scripts/dev-certs.sh").standardized.path
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = [script, directory]
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw TestTimeout(description: "openssl failed to make test certificates") }
    }
}

/// A WebSocket server on a free loopback port whose resolver hands out the pair's cloud channel.
final class WebSocketFixture: @unchecked Sendable {
    let certificates: TestCertificates
    let server: WebSocketServer
    let port: Int
    private var connection: WebSocketConnection?

    init(directory: String, limits: FrameLimits = FrameLimits(), cloud: @escaping @Sendable () -> MessageChannel) async throws {
        certificates = try TestCertificates(directory: directory)
        server = WebSocketServer(
            configuration: .init(port: 0, tls: certificates.server, limits: limits, helloTimeout: .seconds(5)),
            group: testGroup) { request in
                .accepting(request.hello.nodeID == "edge-1" ? cloud() : nil, for: request)
            }
        port = try await server.start()
    }

    func connector(tls: TLSFiles? = nil, masking: WebSocketMasking = .zeroKey) throws -> WebSocketConnector {
        try WebSocketConnector(configuration: .init(port: port, tls: tls ?? certificates.client, masking: masking), group: testGroup)
    }

    func connect(_ channel: MessageChannel, masking: WebSocketMasking = .zeroKey) async throws {
        connection = try await connector(masking: masking).connect(channel)
    }

    func dropConnection() async {
        await connection?.drop()
    }

    func stop() async {
        await connection?.drop()
        await server.stop()
    }
}

/// A QUIC server on a free loopback UDP port whose resolver hands out the pair's cloud channel.
/// Connections through ``connect(_:port:)`` share one connector per port, as an edge's
/// reconnects do, so a reconnect resumes its session with 0-RTT.
final class QUICFixture: @unchecked Sendable {
    let certificates: TestCertificates
    private(set) var server: QUICServer
    let port: Int
    private(set) var connection: QUICChannelConnection?
    private var connectors: [Int: QUICConnector] = [:]
    private let limits: FrameLimits
    private let streamWindow: Int
    private let cloud: @Sendable () -> MessageChannel

    init(
        directory: String, limits: FrameLimits = FrameLimits(), streamWindow: Int = 64 << 10,
        cloud: @escaping @Sendable () -> MessageChannel
    ) async throws {
        certificates = try TestCertificates(directory: directory)
        self.limits = limits
        self.streamWindow = streamWindow
        self.cloud = cloud
        server = Self.makeServer(port: 0, certificates: certificates, limits: limits, streamWindow: streamWindow, cloud: cloud)
        port = try await server.start()
    }

    private static func makeServer(
        port: Int, certificates: TestCertificates, limits: FrameLimits, streamWindow: Int, replayProtection: Bool = true,
        cloud: @escaping @Sendable () -> MessageChannel
    ) -> QUICServer {
        // Generous: the loss tests handshake through a relay that drops up to 30 % of datagrams.
        var configuration = QUICServer.Configuration(
            port: port, tls: certificates.server, limits: limits, helloTimeout: .seconds(30), streamWindow: streamWindow)
        configuration.replayProtection = replayProtection
        return QUICServer(configuration: configuration, group: testGroup) { request in
                .accepting(request.hello.nodeID == "edge-1" ? cloud() : nil, for: request)
            }
    }

    /// Stops the server and starts a new one on the same port (a cloudcore restart: new ticket
    /// key and token secret, so earlier tickets and tokens no longer validate).
    func restartServer(replayProtection: Bool = true) async throws {
        await server.stop()
        server = Self.makeServer(
            port: port, certificates: certificates, limits: limits, streamWindow: streamWindow, replayProtection: replayProtection, cloud: cloud)
        try await server.start()
    }

    func connector(tls: TLSFiles? = nil, port: Int? = nil) throws -> QUICConnector {
        try QUICConnector(configuration: .init(port: port ?? self.port, tls: tls ?? certificates.client, connectTimeout: .seconds(30)), group: testGroup)
    }

    func connect(_ channel: MessageChannel, port: Int? = nil) async throws {
        let port = port ?? self.port
        if connectors[port] == nil { connectors[port] = try connector(port: port) }
        connection = try await connectors[port]!.connect(channel)
    }

    func dropConnection() async {
        await connection?.drop()
    }

    func stop() async {
        await connection?.drop()
        await server.stop()
    }
}
