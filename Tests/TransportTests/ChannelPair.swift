import Foundation
import Testing
import NIOCore
import NIOPosix
@testable import Transport

/// The backends the channel suite runs over.
enum Backend: String, CaseIterable, CustomTestStringConvertible, Sendable {
    case local
    case webSocket
    case quic
    /// QUIC through a relay that drops 10 %, duplicates 5 % and reorders 10 % of datagrams.
    case quicLossy

    var testDescription: String { rawValue }
    var isQUIC: Bool { self == .quic || self == .quicLossy }
}

/// A cloud-side and an edge-side channel joined by a backend, with optional SQLite outboxes,
/// that a test can disconnect, reconnect and restart.
final class ChannelPair: @unchecked Sendable {
    let backend: Backend
    let directory: String
    let useOutbox: Bool
    var cloudConfiguration: ChannelConfiguration
    var edgeConfiguration: ChannelConfiguration
    private(set) var cloud: MessageChannel
    private(set) var edge: MessageChannel
    private var localLink: LocalLink?
    private var webSocket: WebSocketFixture?
    var webSocketFixture: WebSocketFixture? { webSocket }
    private var quic: QUICFixture?
    private(set) var relay: LossyUDPRelay?

    init(backend: Backend, useOutbox: Bool = true, configure: (inout ChannelConfiguration) -> Void = { _ in }) async throws {
        self.backend = backend
        self.useOutbox = useOutbox
        directory = makeTemporaryDirectory()
        var cloudConfiguration = ChannelConfiguration(localNodeID: "cloud", peerNodeID: "edge-1")
        var edgeConfiguration = ChannelConfiguration(localNodeID: "edge-1", peerNodeID: "cloud")
        configure(&cloudConfiguration)
        configure(&edgeConfiguration)
        cloudConfiguration.localNodeID = "cloud"; cloudConfiguration.peerNodeID = "edge-1"
        edgeConfiguration.localNodeID = "edge-1"; edgeConfiguration.peerNodeID = "cloud"
        self.cloudConfiguration = cloudConfiguration
        self.edgeConfiguration = edgeConfiguration
        cloud = try MessageChannel(configuration: cloudConfiguration, outbox: useOutbox ? try Outbox(configuration: .init(path: directory + "/cloud.sqlite")) : nil)
        edge = try MessageChannel(configuration: edgeConfiguration, outbox: useOutbox ? try Outbox(configuration: .init(path: directory + "/edge.sqlite")) : nil)
        if backend == .webSocket {
            webSocket = try await WebSocketFixture(directory: directory) { [unowned self] in self.cloud }
        }
        if backend.isQUIC {
            // The server announces its stream window before it knows the channel: at most the smallest lane window.
            let streamWindow = min(64 << 10, cloudConfiguration.initialWindow, cloudConfiguration.bulkWindow)
            quic = try await QUICFixture(directory: directory, streamWindow: streamWindow) { [unowned self] in self.cloud }
        }
        if backend == .quicLossy {
            relay = try await LossyUDPRelay.start(
                to: try SocketAddress(ipAddress: "127.0.0.1", port: quic!.port),
                impairment: .init(drop: 0.10, duplicate: 0.05, reorder: 0.10, seed: UInt64.random(in: 0 ... .max)))
        }
    }

    /// The QUIC server's UDP port (QUIC backends).
    var quicPort: Int? { quic?.port }
    /// The QUIC server and its fixture (QUIC backends).
    var quicFixture: QUICFixture? { quic }
    /// The edge's QUIC connection (QUIC backends, once connected).
    var quicConnection: QUICChannelConnection? { quic?.connection }

    /// Connects the edge over QUIC to `port` (a relay in front of the server) and waits for the handshake.
    func connect(throughPort port: Int) async throws {
        try await quic!.connect(edge, port: port)
        try await edge.waitUntilConnected()
        try await cloud.waitUntilConnected()
    }

    /// Connects the edge to the cloud and waits for the handshake on both sides.
    func connect() async throws {
        switch backend {
        case .local:
            localLink = LocalLink.connect(client: edge, server: cloud, clientLoop: testGroup.next(), serverLoop: testGroup.next())
        case .webSocket:
            try await webSocket!.connect(edge)
        case .quic, .quicLossy:
            try await quic!.connect(edge, port: relay?.port)
        }
        try await edge.waitUntilConnected()
        try await cloud.waitUntilConnected()
    }

    /// The cloud side's QUIC link while connected over QUIC.
    var cloudQUICLink: QUICLink? { cloud.currentLink as? QUICLink }
    /// The edge side's QUIC link while connected over QUIC.
    var edgeQUICLink: QUICLink? { edge.currentLink as? QUICLink }

    /// Runs `body` on `link`'s event loop.
    func onLoop<T: Sendable>(_ link: QUICLink, _ body: @escaping @Sendable (QUICLink) -> T) async throws -> T {
        try await link.eventLoop.submit { body(link) }.get()
    }

    /// Breaks the connection abruptly (no GOAWAY).
    func disconnect() async {
        switch backend {
        case .local:
            localLink?.close(sending: nil)
        case .webSocket:
            await webSocket!.dropConnection()
        case .quic, .quicLossy:
            await quic!.dropConnection()
        }
        _ = await eventually { !self.edge.isConnected && !self.cloud.isConnected }
    }

    /// Closes the edge channel and opens a new one on the same outbox file (a process restart).
    func restartEdge() async throws {
        await edge.close()
        await disconnect()
        edge = try MessageChannel(configuration: edgeConfiguration, outbox: try Outbox(configuration: .init(path: directory + "/edge.sqlite")))
    }

    /// Closes the cloud channel and opens a new one on the same outbox file.
    func restartCloud() async throws {
        await cloud.close()
        await disconnect()
        cloud = try MessageChannel(configuration: cloudConfiguration, outbox: try Outbox(configuration: .init(path: directory + "/cloud.sqlite")))
    }

    func shutdown() async {
        await edge.close()
        await cloud.close()
        await webSocket?.stop()
        await quic?.stop()
        await relay?.stop()
        removeTemporaryDirectory(directory)
    }
}
