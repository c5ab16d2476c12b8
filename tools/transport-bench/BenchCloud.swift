import CloudHub
import Foundation
import Logging
import NIOCore
import NIOPosix
import Transport

/// A real CloudHub on loopback for the benchmark, with credentials issued for every edge.
struct BenchCloud {
    let hub: CloudHub
    let ports: CloudHub.Ports
    let directory: String

    static func start(directory: String, nodes: Int, channel: ChannelConfiguration) async throws -> BenchCloud {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var channel = channel
        channel.localNodeID = "cloudhub"
        var configuration = CloudHubConfiguration(
            certificatesDirectory: directory + "/cloud", outboxPath: directory + "/cloudhub.sqlite", bindAddress: "127.0.0.1",
            webSocketPort: 0, quicPort: 0, httpsPort: nil, nodeLimit: max(nodes + 16, 1000), channel: channel,
            maxConnections: nodes * 2 + 1000, maxHandshakes: 4_096)
        configuration.helloTimeout = .seconds(60)
        var logger = Logger(label: "cloudhub")
        logger.logLevel = .warning
        let hub = try CloudHub(configuration: configuration, group: MultiThreadedEventLoopGroup.singleton, logger: logger)
        let ports = try await hub.start()
        return BenchCloud(hub: hub, ports: ports, directory: directory)
    }

    /// Writes a key and a certificate for `node` under `directory/edges/{node}` and returns them.
    func issueCredentials(for node: String) throws -> TLSFiles {
        try hub.issueNodeCredentials(for: node, in: directory + "/edges/\(node)")
    }
}

/// The node name of edge `index`.
func benchNodeName(_ index: Int) -> String { "bench-edge-\(index)" }

/// The credentials a child process finds for edge `index` (issued by the parent).
func benchCredentials(directory: String, index: Int, trustRoots: String) -> TLSFiles {
    let folder = directory + "/edges/\(benchNodeName(index))"
    return TLSFiles(certificateChain: folder + "/node.crt", privateKey: folder + "/node.key", trustRoots: trustRoots)
}

/// A benchmark message: its first 8 bytes are the send time (monotonic ns), then padding.
func benchMessage(resource: String, payload: Int, source: String = "bench") -> Message {
    var content = ByteBufferAllocator().buffer(capacity: max(payload, 8))
    content.writeInteger(monotonicNanoseconds())
    if payload > 8 { content.writeRepeatingByte(0x61, count: payload - 8) }
    return Message(router: MessageRouter(source: source, group: "resource", operation: "update", resource: resource), content: content)
}

/// Microseconds since the timestamp in `message`.
func latencyMicroseconds(of message: Message) -> UInt64 {
    guard let sent = message.content.getInteger(at: message.content.readerIndex, as: UInt64.self) else { return 0 }
    let now = monotonicNanoseconds()
    return now > sent ? (now - sent) / 1_000 : 0
}
