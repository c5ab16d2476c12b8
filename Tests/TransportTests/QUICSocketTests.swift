import NIOCore
import NIOPosix
import Testing
@testable import Transport

/// The UDP sockets under QUIC endpoints: each owns its port alone, so datagrams for one
/// connection never reach another endpoint's socket.
@Suite struct QUICSocketTests {
    /// Many clients at once each get a port of their own. With SO_REUSEADDR the kernel hands
    /// out ephemeral ports already bound by another such socket (about one in 20 of 3,000 here),
    /// and the server's replies then reach the wrong client, which drops them.
    @Test func concurrentClientEndpointsNeverShareAPort() async throws {
        let directory = makeTemporaryDirectory()
        defer { removeTemporaryDirectory(directory) }
        let credentials = try QUICCredentials(try TestCertificates(directory: directory).client)
        var endpoints: [QUICEndpoint] = []
        for _ in 0..<800 {
            endpoints.append(try await QUICEndpoint.bind(isServer: false, configuration: .init(credentials: credentials)))
        }
        let ports = endpoints.compactMap { $0.localAddress.port }
        for endpoint in endpoints { await endpoint.close() }
        #expect(ports.count == 800)
        #expect(Set(ports).count == ports.count, "\(ports.count - Set(ports).count) ports were handed to two sockets")
    }

    /// A second server on a port in use fails to bind rather than silently sharing it.
    @Test func aSecondServerCannotBindAPortInUse() async throws {
        let directory = makeTemporaryDirectory()
        defer { removeTemporaryDirectory(directory) }
        let credentials = try QUICCredentials(try TestCertificates(directory: directory).server)
        let first = try await QUICEndpoint.bind(host: "127.0.0.1", port: 0, isServer: true, configuration: .init(credentials: credentials))
        let port = try #require(first.localAddress.port)
        await #expect(throws: (any Error).self) {
            let second = try await QUICEndpoint.bind(host: "127.0.0.1", port: port, isServer: true, configuration: .init(credentials: credentials))
            await second.close()
        }
        await first.close()
    }
}
