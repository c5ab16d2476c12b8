import Foundation
import Testing
@testable import Transport

/// The cloud's CA and node certificates (GnuTLS): issued as KubeEdge issues them, accepted by
/// an independent verifier (openssl) and by real mutual TLS on both backends, and refused
/// where they should be.
@Suite struct IdentityTests {
    /// A CA, its server certificate for 127.0.0.1, and a node's key and certificate, as PEM
    /// files in `directory`.
    struct IssuedFiles {
        let server: TLSFiles
        let node: TLSFiles
    }

    static func write(_ bytes: [UInt8], _ path: String) throws {
        try Data(bytes).write(to: URL(fileURLWithPath: path))
    }

    static func issue(in directory: String, node: String, authority: CertificateAuthority, nodeAuthority: CertificateAuthority? = nil) throws -> IssuedFiles {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try write(try authority.certificate.export(), "\(directory)/ca.pem")
        let serverKey = try PrivateKey.generate()
        try write(try serverKey.export(), "\(directory)/server.key")
        try write(try authority.issueServerCertificate(key: serverKey, names: ["127.0.0.1", "localhost"]).export(), "\(directory)/server.pem")
        // The edge side: a key and a CSR, which travel DER-encoded to the cloud.
        let nodeKey = try PrivateKey.generate()
        let request = try CertificateSigningRequest(commonName: "system:node:\(node)", organization: "system:nodes", key: nodeKey)
        let received = try CertificateSigningRequest(bytes: try request.export(.der), encoding: .der)
        let certificate = try (nodeAuthority ?? authority).issueNodeCertificate(for: received, node: node)
        try write(try nodeKey.export(), "\(directory)/node.key")
        try write(try certificate.export(), "\(directory)/node.pem")
        return IssuedFiles(
            server: TLSFiles(certificateChain: "\(directory)/server.pem", privateKey: "\(directory)/server.key", trustRoots: "\(directory)/ca.pem"),
            node: TLSFiles(certificateChain: "\(directory)/node.pem", privateKey: "\(directory)/node.key", trustRoots: "\(directory)/ca.pem"))
    }

    @Test func aNodeCertificateCarriesOnlyTheNodeNameAndChainsToTheCA() throws {
        let authority = try CertificateAuthority.create()
        #expect(authority.certificate.isAuthority)
        let key = try PrivateKey.generate()
        // The request asks for more (another organization); the certificate carries only the name.
        let request = try CertificateSigningRequest(commonName: "system:node:edge-1", organization: "system:masters", key: key)
        let certificate = try authority.issueNodeCertificate(for: request, node: "edge-1")
        #expect(certificate.commonName == "system:node:edge-1")
        #expect(certificate.organization == "system:nodes")
        #expect(!certificate.isAuthority)
        #expect(certificate.isIssued(by: authority.certificate))
        let days = certificate.notAfter.timeIntervalSince(Date()) / 86_400
        #expect(days > 364 && days <= 365)
        #expect(!certificate.isIssued(by: try CertificateAuthority.create().certificate))
        #expect(!certificate.isIssued(by: authority.certificate, at: Date().addingTimeInterval(366 * 86_400)))
        // The CA's fingerprint is the SHA-256 of its DER form.
        #expect(try authority.certificate.sha256Hex().count == 64)
    }

    /// The longest node name Kubernetes accepts (253) makes a 265-byte common name.
    @Test func theLongestValidNodeNameGetsItsCertificate() throws {
        let authority = try CertificateAuthority.create()
        let node = String(repeating: "a", count: 253)
        let request = try CertificateSigningRequest(commonName: "system:node:\(node)", key: try PrivateKey.generate())
        let received = try CertificateSigningRequest(bytes: try request.export(.der), encoding: .der)
        #expect(received.commonName == "system:node:\(node)")
        #expect(try authority.issueNodeCertificate(for: received, node: node).commonName == "system:node:\(node)")
    }

    @Test func malformedKeysAndCertificatesAreRefused() throws {
        let garbage = Array("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n".utf8)
        #expect(throws: IdentityError.self) { try Certificate(bytes: garbage) }
        #expect(throws: IdentityError.self) { try Certificate(bytes: [0x30, 0x82, 0xFF, 0xFF, 0x01], encoding: .der) }
        #expect(throws: IdentityError.self) { try PrivateKey(bytes: garbage) }
        #expect(throws: IdentityError.self) { try PrivateKey(bytes: [], encoding: .der) }
        // A leaf certificate cannot stand in as the CA.
        let authority = try CertificateAuthority.create()
        let leaf = try authority.issueServerCertificate(key: try PrivateKey.generate(), names: ["localhost"])
        #expect(throws: IdentityError.invalid("the certificate localhost is not a CA certificate")) {
            try CertificateAuthority(certificate: leaf, key: authority.key)
        }
    }

    @Test func opensslVerifiesTheIssuedCertificates() throws {
        let directory = makeTemporaryDirectory()
        defer { removeTemporaryDirectory(directory) }
        _ = try Self.issue(in: directory, node: "edge-7", authority: try CertificateAuthority.create())
        let (status, text) = try runProcess(
            "/usr/bin/openssl", ["verify", "-CAfile", "\(directory)/ca.pem", "-purpose", "sslclient", "\(directory)/node.pem"])
        #expect(status == 0, "\(text)")
        #expect(text.contains("OK"))
    }

    @Test func requestsForAnotherNameOrWithABadSignatureAreRefused() throws {
        let authority = try CertificateAuthority.create()
        let key = try PrivateKey.generate()
        let request = try CertificateSigningRequest(commonName: "system:node:edge-2", key: key)
        #expect(throws: IdentityError.invalid("the certificate request is for \"system:node:edge-2\", not \"system:node:edge-1\"")) {
            try authority.issueNodeCertificate(for: request, node: "edge-1")
        }
        for bad in ["", "Edge-1", "edge_1", "-edge", "edge-", String(repeating: "a", count: 254), "a,O=system:masters"] {
            #expect(throws: IdentityError.self) { try authority.issueNodeCertificate(for: request, node: bad) }
        }
        // A CSR whose signature does not match its contents (one byte of the signature flipped).
        var der = try request.export(.der)
        der[der.count - 3] ^= 0x01
        #expect(throws: IdentityError.self) { try CertificateSigningRequest(bytes: der, encoding: .der) }
        #expect(throws: IdentityError.self) { try CertificateSigningRequest(bytes: Array("not a request".utf8), encoding: .der) }
    }

    @Test func theCAIsCreatedOnceAndLoadedAfterwards() throws {
        let directory = makeTemporaryDirectory()
        defer { removeTemporaryDirectory(directory) }
        let certificatePath = "\(directory)/pki/rootCA.crt"
        let keyPath = "\(directory)/pki/rootCA.key"
        let created = try CertificateAuthority.loadOrCreate(certificatePath: certificatePath, keyPath: keyPath)
        let mode = try FileManager.default.attributesOfItem(atPath: keyPath)[.posixPermissions] as? Int
        #expect(mode == 0o600)
        let loaded = try CertificateAuthority.loadOrCreate(certificatePath: certificatePath, keyPath: keyPath)
        #expect(try loaded.certificate.sha256Hex() == created.certificate.sha256Hex())
        // What the loaded CA signs chains to the certificate created first.
        let request = try CertificateSigningRequest(commonName: "system:node:edge-1", key: try PrivateKey.generate())
        #expect(try loaded.issueNodeCertificate(for: request, node: "edge-1").isIssued(by: created.certificate))
        try FileManager.default.removeItem(atPath: keyPath)
        #expect(throws: IdentityError.self) { try CertificateAuthority.loadOrCreate(certificatePath: certificatePath, keyPath: keyPath) }
    }

    /// Mutual TLS with the issued certificates on both backends: the node connects; a node
    /// certificate from another CA is refused.
    @Test(arguments: [Backend.webSocket, .quic])
    func issuedCertificatesCarryMutualTLS(backend: Backend) async throws {
        let directory = makeTemporaryDirectory()
        defer { removeTemporaryDirectory(directory) }
        let authority = try CertificateAuthority.create()
        let good = try Self.issue(in: "\(directory)/good", node: "edge-1", authority: authority)
        let rogue = try Self.issue(in: "\(directory)/rogue", node: "edge-1", authority: authority, nodeAuthority: try CertificateAuthority.create())
        let cloud = try MessageChannel(configuration: ChannelConfiguration(localNodeID: "cloud", peerNodeID: "edge-1"))
        let edge = try MessageChannel(configuration: ChannelConfiguration(localNodeID: "edge-1", peerNodeID: "cloud"))
        let rogueEdge = try MessageChannel(configuration: ChannelConfiguration(localNodeID: "edge-1", peerNodeID: "cloud"))
        switch backend {
        case .webSocket:
            let server = WebSocketServer(configuration: .init(port: 0, tls: good.server), group: testGroup) { _ in .accept(cloud) }
            let port = try await server.start()
            let connection = try await WebSocketConnector(configuration: .init(port: port, tls: good.node), group: testGroup).connect(edge)
            try await edge.waitUntilConnected()
            await #expect(throws: (any Error).self) {
                _ = try await WebSocketConnector(configuration: .init(port: port, tls: rogue.node), group: testGroup).connect(rogueEdge)
                try await rogueEdge.waitUntilConnected(timeout: .seconds(3))
            }
            await connection.drop()
            await server.stop()
        case .quic:
            let server = QUICServer(configuration: .init(port: 0, tls: good.server), group: testGroup) { _ in .accept(cloud) }
            let port = try await server.start()
            let connection = try await QUICConnector(configuration: .init(port: port, tls: good.node), group: testGroup).connect(edge)
            try await edge.waitUntilConnected()
            await #expect(throws: (any Error).self) {
                var configuration = QUICConnector.Configuration(port: port, tls: rogue.node)
                configuration.connectTimeout = .seconds(3)
                _ = try await QUICConnector(configuration: configuration, group: testGroup).connect(rogueEdge)
                try await rogueEdge.waitUntilConnected(timeout: .seconds(3))
            }
            await connection.drop()
            await server.stop()
        case .local, .quicLossy:
            Issue.record("not a network backend")
        }
        #expect(cloud.counters.handshakes == 1)
        await edge.close()
        await rogueEdge.close()
        await cloud.close()
    }

    @Test("a fresh CA, its certificates and copies read from their encodings verify one another")
    func verifiesAcrossEncodings() throws {
        let authority = try CertificateAuthority.create()
        let request = try CertificateSigningRequest(commonName: "system:node:edge-1", key: try PrivateKey.generate())
        let issued = try authority.issueNodeCertificate(for: request, node: "edge-1")
        let issuedCopy = try Certificate(bytes: try issued.export(.der), encoding: .der)
        let authorityCopy = try Certificate(bytes: try authority.certificate.export())
        // Before signing with encoded names, the mixed pairs failed: GnuTLS compares encoded names.
        #expect(issued.isIssued(by: authority.certificate))
        #expect(issuedCopy.isIssued(by: authority.certificate))
        #expect(issued.isIssued(by: authorityCopy))
        #expect(issuedCopy.isIssued(by: authorityCopy))
    }
}
