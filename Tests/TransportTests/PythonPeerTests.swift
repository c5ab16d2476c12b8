import Foundation
import NIOCore
import Testing
@testable import Transport

/// An independent Python peer (websockets, its own codec written from docs/protocol.md) talks to
/// our WebSocket server: proves the specification, not just our codec.
@Suite(.serialized) struct PythonPeerTests {
    private func runPeer(mode: String, count: Int = 200) async throws -> (status: Int32, output: String, cloud: MessageChannel) {
        let directory = makeTemporaryDirectory()
        defer { removeTemporaryDirectory(directory) }
        let cloud = try MessageChannel(configuration: ChannelConfiguration(localNodeID: "cloud", peerNodeID: "edge-1"))
        let fixture = try await WebSocketFixture(directory: directory) { cloud }
        let echo = echoEvents(of: cloud)
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Peers/ws_peer.py").path
        let certificates = fixture.certificates.client
        let process = Process()
        let output = Pipe()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [
            "python3", script, "--url", "wss://127.0.0.1:\(fixture.port)/channel", "--ca", certificates.trustRoots,
            "--cert", certificates.certificateChain, "--key", certificates.privateKey, "--node", "edge-1",
            "--count", "\(count)", "--mode", mode,
        ]
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let data = await Task.detached { Data(readToEnd(output.fileHandleForReading.fileDescriptor)) }.value
        process.waitUntilExit()
        echo.cancel()
        await cloud.close()
        await fixture.stop()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self), cloud)
    }

    @Test func pythonPeerExchangesReliableMessagesBothWays() async throws {
        let (status, output, cloud) = try await runPeer(mode: "exchange")
        #expect(status == 0, "python peer failed: \(output)")
        #expect(output.contains("\"sent\": 200, \"received\": 200"), "\(output)")
        #expect(cloud.counters.handshakes == 1)
    }

    @Test func pythonPeerUnknownFrameTypeGetsProtocolError() async throws {
        let (status, output, _) = try await runPeer(mode: "malformed")
        #expect(status == 0, "python peer failed: \(output)")
        #expect(output.contains("\"goaway\": 1"), "\(output)")
    }

    @Test func pythonPeerGigabyteClaimGetsLimitExceeded() async throws {
        let (status, output, _) = try await runPeer(mode: "oversize")
        #expect(status == 0, "python peer failed: \(output)")
        #expect(output.contains("\"goaway\": 2"), "\(output)")
    }
}
