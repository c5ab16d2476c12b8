import CloudHub
import EdgeHub
import Foundation
import NIOCore
import Testing
import TestSupport
import Transport

@Suite("Edges join and connect", .serialized)
struct JoinAndConnectTests {
    @Test("an edge joins with a token, connects over QUIC, and messages route both ways")
    func joinOverQUIC() async throws {
        let fixture = try await HubFixture()
        let events = Task { () -> [NodeEvent] in
            var seen: [NodeEvent] = []
            for await event in fixture.hub.events {
                seen.append(event)
                if seen.count == 1 { break }
            }
            return seen
        }
        let bus = MessageBus()
        let meta = bus.register(module: "metaManager", group: "meta")
        let edge = try EdgeHub(configuration: fixture.edgeConfiguration("edge-1", token: try fixture.hub.makeToken()), bus: bus, group: testGroup)
        edge.start()
        #expect(await eventually { edge.backend == .quic }, "\(edge.lastError ?? "")")
        #expect(fixture.hub.connection(of: "edge-1") == .quic)
        let online = await events.value
        guard case .online(let node, let backend, _)? = online.first else {
            Issue.record("no online event: \(online)")
            return
        }
        #expect(node == "edge-1" && backend == .quic)
        // The certificate on disk is this node's, from the hub's CA.
        let certificate = try Certificate(bytes: Array(FileManager.default.contents(atPath: fixture.directory + "/edge-1-certs/node.crt")!))
        #expect(certificate.commonName == "system:node:edge-1")
        #expect(certificate.isIssued(by: fixture.hub.authority!.certificate))

        // Cloud → the module of the mapped group.
        try await fixture.hub.send(hubMessage("insert", "default/pod/nginx", content: "pod"), to: "edge-1", on: .state, delivery: .reliable)
        let delivered = try await collect(1, from: meta, lane: .state)
        #expect(delivered.first?.router.resource == "default/pod/nginx")

        // A module → the cloud, about the pod it was given.
        try await meta.send(
            Message(router: MessageRouter(source: "metaManager", destination: EdgeHub.moduleName, group: "resource", operation: "update",
                                          resource: "default/podstatus/nginx"), content: ByteBuffer(string: "Running")),
            on: .state, delivery: .reliable)
        let received = try await nextMessages(1, from: fixture.hub)
        #expect(received.first?.node == "edge-1")
        #expect(received.first?.message.router.resource == "default/podstatus/nginx")
        #expect(received.first.map { String(buffer: $0.message.content) } == "Running")

        await edge.stop()
        #expect(await eventually { fixture.hub.onlineNodes.isEmpty })
        await fixture.stop()
    }

    @Test("with UDP to the QUIC port dropped the edge uses WebSocket, and returns to QUIC when UDP passes again")
    func fallbackAndReturn() async throws {
        let fixture = try await HubFixture()
        let gate = try await UDPGate(target: fixture.ports.quic, open: false)
        var configuration = fixture.edgeConfiguration("edge-2", token: try fixture.hub.makeToken())
        configuration.quicPort = gate.port
        configuration.quicHandshakeTimeout = .milliseconds(700)
        let bus = MessageBus()
        let meta = bus.register(module: "metaManager", group: "meta")
        let edge = try EdgeHub(configuration: configuration, bus: bus, group: testGroup)
        edge.start()
        #expect(await eventually { edge.backend == .webSocket }, "\(edge.lastError ?? "")")
        #expect(fixture.hub.connection(of: "edge-2") == .webSocket)
        #expect(edge.statistics.quicFailures >= 1)
        try await fixture.hub.send(hubMessage("insert", "default/configmap/a", content: "over websocket"), to: "edge-2", on: .state, delivery: .reliable)
        #expect(try await collect(1, from: meta, lane: .state).first.map { String(buffer: $0.content) } == "over websocket")

        gate.setOpen(true)
        #expect(await eventually(timeout: .seconds(15)) { edge.backend == .quic && fixture.hub.connection(of: "edge-2") == .quic }, "\(edge.lastError ?? "")")
        try await fixture.hub.send(hubMessage("insert", "default/configmap/b", content: "over quic"), to: "edge-2", on: .state, delivery: .reliable)
        #expect(try await collect(1, from: meta, lane: .state).first.map { String(buffer: $0.content) } == "over quic")

        await edge.stop()
        await gate.close()
        await fixture.stop()
    }
}

@Suite("cloudcore gettoken")
struct GetTokenTests {
    @Test("cloudcore gettoken prints a token that validates against the CA it created, and refuses a bad validity")
    func printsAValidToken() throws {
        let directory = makeTemporaryDirectory()
        defer { removeTemporaryDirectory(directory) }
        // The executable beside the test bundle (make test builds every product).
        let binary = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("cloudcore").path
        let (status, output) = try runProcess(binary, ["gettoken", "--certificates-dir", directory + "/ca", "--validity-hours", "2"])
        #expect(status == 0, "\(output)")
        let authority = try CertificateAuthority.loadOrCreate(certificatePath: directory + "/ca/ca.crt", keyPath: directory + "/ca/ca.key")
        let token = output.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(throws: Never.self) { try BootstrapToken.validate(token, authority: authority) }
        #expect(throws: IdentityError.invalid("the token expired")) {
            try BootstrapToken.validate(token, authority: authority, now: Date().addingTimeInterval(3 * 3600))
        }
        let refused = try runProcess(binary, ["gettoken", "--certificates-dir", directory + "/ca", "--validity-hours", "0"])
        #expect(refused.status != 0)
        #expect(refused.output.contains("--validity-hours must be positive"))
    }
}
