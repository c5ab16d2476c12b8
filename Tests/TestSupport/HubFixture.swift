import CloudHub
import EdgeHub
import Foundation
import Logging
import NIOCore
import Transport

/// A CloudHub on loopback with every listener on a free port, its CA in a temporary directory,
/// and helpers to make edges that join it.
public struct HubFixture: Sendable {
    public let directory: String
    public let hub: CloudHub
    public let ports: CloudHub.Ports

    public init(nodeLimit: Int = 10_000, configure: (inout CloudHubConfiguration) -> Void = { _ in }) async throws {
        directory = makeTemporaryDirectory()
        var configuration = CloudHubConfiguration(
            certificatesDirectory: directory + "/cloud-certs", outboxPath: directory + "/cloudhub.sqlite", bindAddress: "127.0.0.1",
            webSocketPort: 0, quicPort: 0, httpsPort: 0, nodeLimit: nodeLimit)
        configure(&configuration)
        hub = try CloudHub(configuration: configuration, group: testGroup)
        ports = try await hub.start()
    }

    /// An edge configuration for `node` that reconnects quickly.
    public func edgeConfiguration(_ node: String, token: String?) -> EdgeHubConfiguration {
        EdgeHubConfiguration(
            nodeName: node, cloudHost: "127.0.0.1", certificatesDirectory: directory + "/\(node)-certs", token: token,
            outboxPath: directory + "/\(node).sqlite", quicPort: ports.quic, webSocketPort: ports.webSocket, httpsPort: ports.https,
            quicHandshakeTimeout: .seconds(2), quicRetryInterval: .seconds(1), initialBackoff: .milliseconds(50), maxBackoff: .milliseconds(500))
    }

    /// `node`'s key and certificate from the hub's CA, as a join would leave them.
    public func issueCredentials(for node: String) throws -> TLSFiles {
        try hub.issueNodeCredentials(for: node, in: directory + "/\(node)-certs")
    }

    public func stop() async {
        await hub.stop()
        removeTemporaryDirectory(directory)
    }
}

/// A message for the tests: `resource` as given, content naming what it is.
public func hubMessage(_ operation: String, _ resource: String, group: String = "resource", content: String) -> Message {
    Message(router: MessageRouter(source: "test", group: group, operation: operation, resource: resource), content: ByteBuffer(string: content))
}

/// The next `count` messages from the hub (any node), or a timeout.
public func nextMessages(_ count: Int, from hub: CloudHub, timeout: Duration = .seconds(20)) async throws -> [NodeMessage] {
    try await withTimeout(timeout, "\(count) messages from nodes") {
        var received: [NodeMessage] = []
        for await message in hub.incoming {
            received.append(message)
            if received.count == count { break }
        }
        return received
    }
}
