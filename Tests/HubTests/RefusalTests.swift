import CloudHub
@testable import EdgeHub
import Foundation
import NIOCore
import Testing
import TestSupport
import Transport

@Suite("The hubs refuse what they must, with reasons", .serialized)
struct RefusalTests {
    /// Starts an edge with `token` and returns its last error once it has one.
    private func joinError(_ fixture: HubFixture, node: String, token: String) async throws -> String {
        let edge = try EdgeHub(configuration: fixture.edgeConfiguration(node, token: token), bus: MessageBus(), group: testGroup)
        edge.start()
        _ = await eventually { edge.lastError != nil }
        let error = edge.lastError ?? ""
        #expect(edge.backend == nil)
        await edge.stop()
        #expect(!FileManager.default.fileExists(atPath: fixture.directory + "/\(node)-certs/node.crt"))
        return error
    }

    @Test("a forged, an expired and a foreign token are refused and no certificate is issued")
    func badTokens() async throws {
        let fixture = try await HubFixture()
        let good = try fixture.hub.makeToken()
        // Same CA fingerprint and claims, but the signature's last characters changed.
        var forged = good
        forged.removeLast(4)
        forged += good.hasSuffix("AAAA") ? "BBBB" : "AAAA"
        #expect(try await joinError(fixture, node: "forged", token: forged).contains("the token's signature does not verify"))

        let expired = try BootstrapToken.make(authority: fixture.hub.authority!, validity: .seconds(60), now: Date().addingTimeInterval(-3600))
        #expect(try await joinError(fixture, node: "expired", token: expired).contains("the token expired"))

        let foreign = try BootstrapToken.make(authority: try CertificateAuthority.create())
        #expect(try await joinError(fixture, node: "foreign", token: foreign).contains("is not the one the token names"))
        await fixture.stop()
    }

    @Test("a node certificate from another CA gets no session")
    func foreignCertificate() async throws {
        let fixture = try await HubFixture()
        let rogue = try CertificateAuthority.create()
        let folder = fixture.directory + "/edge-x-certs"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let key = try PrivateKey.generate()
        let certificate = try rogue.issueNodeCertificate(for: try CertificateSigningRequest(commonName: "system:node:edge-x", key: key), node: "edge-x")
        try Data(try key.export()).write(to: URL(fileURLWithPath: folder + "/node.key"))
        try Data(try certificate.export()).write(to: URL(fileURLWithPath: folder + "/node.crt"))
        // The edge trusts the real cloud CA, and so would accept the server; the server must refuse the edge.
        try Data(try fixture.hub.authority!.certificate.export()).write(to: URL(fileURLWithPath: folder + "/ca.crt"))
        let tls = TLSFiles(certificateChain: folder + "/node.crt", privateKey: folder + "/node.key", trustRoots: folder + "/ca.crt")
        for backend in [TransportBackend.quic, .webSocket] {
            let channel = try MessageChannel(configuration: ChannelConfiguration(localNodeID: "edge-x", peerNodeID: "cloudhub"))
            do {
                switch backend {
                case .quic:
                    let connector = try QUICConnector(configuration: .init(port: fixture.ports.quic, serverName: "127.0.0.1", tls: tls, connectTimeout: .seconds(3)), group: testGroup)
                    let connection = try await connector.connect(channel)
                    // TLS 1.3: the client finishes first; the server's refusal follows.
                    await connection.closed()
                case .webSocket:
                    let connector = try WebSocketConnector(configuration: .init(port: fixture.ports.webSocket, serverName: "127.0.0.1", tls: tls), group: testGroup)
                    let connection = try await connector.connect(channel)
                    await connection.closed()
                }
            } catch {
                // Refused during the handshake.
            }
            #expect(!channel.isConnected, "\(backend)")
            #expect(fixture.hub.onlineNodes.isEmpty, "\(backend)")
            #expect(fixture.hub.channel(of: "edge-x") == nil, "\(backend)")
            await channel.close()
        }
        await fixture.stop()
    }

    @Test("a HELLO claiming another node than the certificate is refused", arguments: [TransportBackend.quic, .webSocket])
    func helloNamingAnotherNode(backend: TransportBackend) async throws {
        let fixture = try await HubFixture()
        let tls = try fixture.issueCredentials(for: "edge-1")
        let impostor = try MessageChannel(configuration: ChannelConfiguration(localNodeID: "edge-2", peerNodeID: "cloudhub"))
        switch backend {
        case .quic:
            _ = try await QUICConnector(configuration: .init(port: fixture.ports.quic, serverName: "127.0.0.1", tls: tls), group: testGroup).connect(impostor)
        case .webSocket:
            _ = try await WebSocketConnector(configuration: .init(port: fixture.ports.webSocket, serverName: "127.0.0.1", tls: tls), group: testGroup).connect(impostor)
        }
        #expect(await eventually { impostor.lastGoAway != nil })
        #expect(impostor.lastGoAway?.code == .unauthorized)
        #expect(impostor.lastGoAway?.reason == "HELLO names node edge-2 but the certificate is for node edge-1")
        #expect(fixture.hub.statistics.refusedConnections == 1)
        #expect(fixture.hub.channel(of: "edge-2") == nil)
        await impostor.close()
        await fixture.stop()
    }

    @Test("a node sending another node's status is refused and told why; its own status passes")
    func anotherNodesStatus() async throws {
        let fixture = try await HubFixture()
        let bus = MessageBus()
        let meta = bus.register(module: "metaManager", group: "meta")
        let edge = try EdgeHub(configuration: fixture.edgeConfiguration("edge-1", token: try fixture.hub.makeToken()), bus: bus, group: testGroup)
        edge.start()
        #expect(await eventually { edge.backend != nil }, "\(edge.lastError ?? "")")

        // The hub checks messages as its reader takes them.
        let accepted = Task { try await nextMessages(1, from: fixture.hub) }
        let forged = hubMessage("update", "default/nodestatus/edge-2", content: "Ready")
        try await edge.send(forged, on: .state, delivery: .reliable)
        let answer = try await collect(1, from: meta, lane: .state).first
        #expect(answer?.router.operation == MessageRouter.Operation.error)
        #expect(answer?.header.parentID == forged.header.id)
        #expect(answer.map { String(buffer: $0.content) } == "node edge-1 may not send about node edge-2 (update default/nodestatus/edge-2)")

        // A pod the cloud never gave this node, and an unknown resource type.
        try await edge.send(hubMessage("update", "default/podstatus/not-mine", content: "Running"), on: .state, delivery: .reliable)
        try await edge.send(hubMessage("delete", "kube-system/clusterrole/admin", content: ""), on: .state, delivery: .reliable)
        let more = try await collect(2, from: meta, lane: .state)
        #expect(more.map { String(buffer: $0.content) } == [
            "node edge-1 may not send about pod default/not-mine, which is not assigned to it (update default/podstatus/not-mine)",
            "node edge-1 may not send delete on resource type clusterrole (kube-system/clusterrole/admin)",
        ])

        try await edge.send(hubMessage("update", "default/nodestatus/edge-1", content: "Ready"), on: .state, delivery: .reliable)
        let passed = try await accepted.value
        #expect(passed.first?.message.router.resource == "default/nodestatus/edge-1")
        #expect(fixture.hub.statistics.refusedMessages == 3)
        #expect(fixture.hub.statistics.receivedMessages == 1)

        // The cloud side cannot address a message to one node that names another.
        await #expect(throws: CloudHubError.misaddressed(node: "edge-1", resource: "node/edge-2/default/pod/a")) {
            try await fixture.hub.send(hubMessage("insert", "node/edge-2/default/pod/a", content: ""), to: "edge-1", on: .state, delivery: .reliable)
        }
        await edge.stop()
        await fixture.stop()
    }

    @Test("a second connection of a node replaces the first without an offline event")
    func replacement() async throws {
        let fixture = try await HubFixture()
        let tls = try fixture.issueCredentials(for: "edge-1")
        let events = Task { () -> [NodeEvent] in
            var seen: [NodeEvent] = []
            for await event in fixture.hub.events { seen.append(event) }
            return seen
        }
        let first = try MessageChannel(configuration: ChannelConfiguration(localNodeID: "edge-1", peerNodeID: "cloudhub"))
        _ = try await WebSocketConnector(configuration: .init(port: fixture.ports.webSocket, serverName: "127.0.0.1", tls: tls), group: testGroup).connect(first)
        try await first.waitUntilConnected()
        let second = try MessageChannel(configuration: ChannelConfiguration(localNodeID: "edge-1", peerNodeID: "cloudhub"))
        _ = try await QUICConnector(configuration: .init(port: fixture.ports.quic, serverName: "127.0.0.1", tls: tls), group: testGroup).connect(second)
        try await second.waitUntilConnected()
        #expect(await eventually { first.lastGoAway?.code == .replaced })
        #expect(fixture.hub.connection(of: "edge-1") == .quic)
        try await fixture.hub.send(hubMessage("insert", "default/configmap/c", content: "to the newer"), to: "edge-1", on: .state, delivery: .reliable)
        #expect(try await collect(1, from: second, lane: .state).first.map { String(buffer: $0.content) } == "to the newer")
        await second.close()
        #expect(await eventually { fixture.hub.onlineNodes.isEmpty })
        await first.close()
        await fixture.stop()
        let seen = await events.value.map { event -> String in
            switch event {
            case .online(let node, let backend, _): "online \(node) \(backend)"
            case .offline(let node): "offline \(node)"
            }
        }
        #expect(seen == ["online edge-1 websocket", "offline edge-1"])
    }

    @Test("the certificate endpoint answers bad requests with a status and a reason")
    func certificateEndpoint() async throws {
        let fixture = try await HubFixture { $0.https.maxBodyBytes = 2048 }
        let base = "https://127.0.0.1:\(fixture.ports.https)"
        // The body (a reason ends with a newline) and the status after a "|".
        func curl(_ arguments: [String]) throws -> String {
            try runProcess("/usr/bin/curl", ["-sk", "-w", "|%{http_code}"] + arguments).output
        }
        #expect(try curl([base + "/nothing"]).hasSuffix("no such endpoint: /nothing (try /ca.crt or /edge.crt)\n|404"))
        #expect(try curl(["-X", "DELETE", base + "/edge.crt"]).hasSuffix("DELETE is not allowed on /edge.crt\n|405"))
        let big = fixture.directory + "/big.bin"
        try Data(repeating: 0x30, count: 4096).write(to: URL(fileURLWithPath: big))
        #expect(try curl(["--data-binary", "@" + big, base + "/edge.crt"]).hasSuffix("the body is 4096 bytes; the limit is 2048\n|413"))
        let garbage = fixture.directory + "/garbage.bin"
        try Data(repeating: 0x30, count: 100).write(to: URL(fileURLWithPath: garbage))
        #expect(try curl(["--data-binary", "@" + garbage, base + "/edge.crt"]).contains("the certificate request is not valid"))
        let request = fixture.directory + "/request.der"
        try Data(try CertificateSigningRequest(commonName: "system:node:edge-9", key: try PrivateKey.generate()).export(.der)).write(to: URL(fileURLWithPath: request))
        #expect(try curl(["--data-binary", "@" + request, base + "/edge.crt"]).hasSuffix(
            "a bootstrap token (Authorization: Bearer) or the node's current certificate is required\n|401"))
        #expect(try curl(["-H", "Authorization: Basic eDp5", "--data-binary", "@" + request, base + "/edge.crt"]).hasSuffix(
            "the Authorization header must be Bearer {token}\n|401"))
        let bigHeader = "X-Padding: " + String(repeating: "a", count: 9000)
        #expect(try curl(["-H", bigHeader, base + "/ca.crt"]).contains("the limit is 8192\n|431"))
        let caFile = fixture.directory + "/ca.der"
        #expect(try curl(["-o", caFile, base + "/ca.crt"]).hasSuffix("|200"))
        #expect(try Certificate(bytes: Array(FileManager.default.contents(atPath: caFile)!), encoding: .der).sha256Hex() == fixture.hub.authority!.certificate.sha256Hex())
        await fixture.stop()
    }

    @Test("the certificate endpoint closes a connection that sends nothing within the request timeout")
    func certificateEndpointTimeout() async throws {
        let fixture = try await HubFixture { $0.https.requestTimeout = .milliseconds(500) }
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(fixture.ports.https).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        #expect(connected == 0)
        // Without the server's timeout the read fails after 5 s instead of hanging the test.
        var limit = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        let started = ContinuousClock.now
        // Silence: the server must close (read returns 0) after about the timeout, not keep the slot.
        var byte: UInt8 = 0
        let count = read(fd, &byte, 1)
        let waited = ContinuousClock.now - started
        #expect(count == 0)
        #expect(waited >= .milliseconds(400) && waited < .seconds(5), "closed after \(waited)")
        await fixture.stop()
    }

    @Test("a node renews its certificate with the current one, and may not renew another node's")
    func rotation() async throws {
        let fixture = try await HubFixture()
        let bus = MessageBus()
        var configuration = fixture.edgeConfiguration("edge-1", token: try fixture.hub.makeToken())
        configuration.rotationWindow = 0...0
        configuration.rotationCheckInterval = .milliseconds(200)
        let edge = try EdgeHub(configuration: configuration, bus: bus, group: testGroup)
        edge.start()
        #expect(await eventually { edge.statistics.rotations >= 1 }, "\(edge.lastError ?? "")")
        await edge.stop()
        let renewed = try Certificate(bytes: Array(FileManager.default.contents(atPath: fixture.directory + "/edge-1-certs/node.crt")!))
        #expect(renewed.commonName == "system:node:edge-1")
        #expect(renewed.isIssued(by: fixture.hub.authority!.certificate))

        // edge-1's certificate as proof for a request naming edge-2.
        let client = CertificateClient(host: "127.0.0.1", port: fixture.ports.https, serverName: "127.0.0.1", group: testGroup, timeout: .seconds(5))
        let request = try CertificateSigningRequest(commonName: "system:node:edge-2", key: try PrivateKey.generate())
        let credentials = NodeCredentials(directory: fixture.directory + "/edge-1-certs", node: "edge-1")
        await #expect(throws: JoinError.refused(status: 403, reason: "node edge-1 may not request a certificate for node edge-2")) {
            _ = try await client.requestCertificate(
                try request.export(.der), node: "edge-2", authority: try fixture.hub.authority!.certificate.export(.der), token: nil, identity: credentials.tls)
        }
        await fixture.stop()
    }
}
