import Foundation
@testable import Transport

/// A CA, a server certificate for localhost/127.0.0.1, a client certificate, and a client
/// certificate from an unrelated CA, made with the `openssl` command at test run time.
struct TestCertificates {
    let directory: String

    var server: TLSFiles { TLSFiles(certificateChain: "\(directory)/server.pem", privateKey: "\(directory)/server.key", trustRoots: "\(directory)/ca.pem") }
    var client: TLSFiles { TLSFiles(certificateChain: "\(directory)/client.pem", privateKey: "\(directory)/client.key", trustRoots: "\(directory)/ca.pem") }
    var rogueClient: TLSFiles { TLSFiles(certificateChain: "\(directory)/rogue.pem", privateKey: "\(directory)/rogue.key", trustRoots: "\(directory)/ca.pem") }

    init(directory: String) throws {
        self.directory = directory
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let script = """
            set -e
            cd '\(directory)'
            cat > ext.cnf <<'CNF'
            [server]
            subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1
            extendedKeyUsage=serverAuth
            [client]
            extendedKeyUsage=clientAuth
            CNF
            gen() { openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$1.key" -subj "$2" -out "$1.csr" 2>/dev/null; }
            openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=test-ca 2>/dev/null
            openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout rogue-ca.key -out rogue-ca.pem -days 2 -subj /CN=rogue-ca 2>/dev/null
            gen server /CN=cloudcore; openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile ext.cnf -extensions server 2>/dev/null
            gen client "/CN=system:node:edge-1/O=system:nodes"; openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out client.pem -days 2 -extfile ext.cnf -extensions client 2>/dev/null
            gen rogue "/CN=system:node:edge-1/O=system:nodes"; openssl x509 -req -in rogue.csr -CA rogue-ca.pem -CAkey rogue-ca.key -CAcreateserial -out rogue.pem -days 2 -extfile ext.cnf -extensions client 2>/dev/null
            """
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = ["-c", script]
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
            group: testGroup) { hello in
                hello.nodeID == "edge-1" ? cloud() : nil
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
