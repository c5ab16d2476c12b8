import CloudHub
import Testing
import TestSupport
import Transport

@Test func debugZeroRTTThenWebSocket() async throws {
    let fixture = try await HubFixture()
    let tls = try fixture.issueCredentials(for: "edge-1")
    let gate = try await UDPGate(target: fixture.ports.quic, open: true)
    let channel = try MessageChannel(configuration: ChannelConfiguration(localNodeID: "edge-1", peerNodeID: "cloudhub"))
    let quic = try QUICConnector(configuration: .init(port: gate.port, serverName: "127.0.0.1", tls: tls, connectTimeout: .milliseconds(500)), group: testGroup)
    let first = try await quic.connect(channel)
    try await channel.waitUntilConnected()
    print("DBG first connected")
    await first.drop()
    gate.setOpen(false)
    do {
        _ = try await quic.connect(channel)
        print("DBG unexpected quic success")
    } catch {
        print("DBG quic failed \(error)")
    }
    let ws = try await WebSocketConnector(configuration: .init(port: fixture.ports.webSocket, serverName: "127.0.0.1", tls: tls), group: testGroup).connect(channel)
    print("DBG ws upgraded")
    do {
        try await channel.waitUntilConnected(timeout: .seconds(3))
        print("DBG ws connected")
    } catch {
        print("DBG ws not connected \(error)")
    }
    await ws.drop()
    await channel.close()
    await gate.close()
    await fixture.stop()
}
