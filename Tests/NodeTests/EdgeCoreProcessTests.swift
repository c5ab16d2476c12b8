import CloudHub
import Foundation
import NIOCore
@testable import Node
import Testing
import TestSupport
import Transport

/// The edgecore executable beside the test bundle (`make test` builds every product).
let edgecoreBinary = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("edgecore").path

@Suite(.serialized) struct EdgeCoreProcessTests {
    @Test func defaultConfigLoadsAndBadConfigsAreRefusedWithTheKeyNamed() throws {
        let directory = makeTemporaryDirectory()
        defer { removeTemporaryDirectory(directory) }
        let printed = try runProcess(edgecoreBinary, ["--defaultconfig"])
        #expect(printed.status == 0)
        #expect(printed.output.contains("edgeHub:") && printed.output.contains("mqttServerExternal: tcp://127.0.0.1:1883"))
        #expect(printed.output.contains("server: 127.0.0.1:10550"))
        for (yaml, complaint) in [
            ("modules:\n  edgeHub:\n    bogus: 1\n", "unknown key modules.edgeHub.bogus"),
            ("modules:\n  eventBus:\n    mqttMode: 0\n", "only 2 (an external broker)"),
            ("modules:\n  edgeHub:\n    heartbeat: soon\n", "heartbeat"),
            ("modules:\n  metaManager:\n    metaServer:\n      server: nowhere\n", "modules.metaManager.metaServer.server"),
            ("- a list\n", "mapping"),
        ] {
            try yaml.write(toFile: directory + "/edgecore.yaml", atomically: true, encoding: .utf8)
            let run = try runProcess(edgecoreBinary, ["--config", directory + "/edgecore.yaml"])
            #expect(run.status != 0, "\(yaml)")
            #expect(run.output.contains(complaint), "\(run.output)")
        }
        let missing = try runProcess(edgecoreBinary, ["--config", directory + "/absent.yaml"])
        #expect(missing.status != 0 && missing.output.contains("--defaultconfig"))
    }

    @Test func edgecoreJoinsServesOfflineAfterARestartAndStopsOnSIGTERM() async throws {
        let fixture = try await HubFixture()
        let broker = try await MosquittoBroker()
        defer { broker.stop() }
        let metaServerPort = freeLoopbackPort()
        let metricsPort = freeLoopbackPort()
        let edge = fixture.directory + "/edge"
        let yaml = """
            database:
              dataSource: \(edge)/edgecore.db
            modules:
              edgeHub:
                httpServer: https://127.0.0.1:\(fixture.ports.https)
                quic: {server: "127.0.0.1:\(fixture.ports.quic)"}
                websocket: {server: "127.0.0.1:\(fixture.ports.webSocket)"}
                token: \(try fixture.hub.makeToken())
                certificatesDirectory: \(edge)/certs
                outbox: \(edge)/outbox.db
              eventBus:
                mqttServerExternal: tcp://127.0.0.1:\(broker.port)
              metaManager:
                metaServer: {server: "127.0.0.1:\(metaServerPort)"}
              edged: {hostnameOverride: edge-1, rootDirectory: \(edge)/edged}
            metrics: {server: "127.0.0.1:\(metricsPort)"}

            """
        try FileManager.default.createDirectory(atPath: edge, withIntermediateDirectories: true)
        try yaml.write(toFile: fixture.directory + "/edgecore.yaml", atomically: true, encoding: .utf8)
        var edgecore = try BackgroundProcess(edgecoreBinary, ["--config", fixture.directory + "/edgecore.yaml"], outputFile: fixture.directory + "/edgecore.log")
        defer { edgecore.stop() }
        let log = { (try? String(contentsOfFile: fixture.directory + "/edgecore.log", encoding: .utf8)) ?? "" }

        // It joins with the token and connects.
        #expect(await eventually(timeout: .seconds(30)) { fixture.hub.connection(of: "edge-1") != nil }, "\(log())")
        try await fixture.hub.send(objectMessage("insert", "default/pod/web", podJSON("web", resourceVersion: 5)), to: "edge-1", on: .state, delivery: .reliable)
        #expect(await eventually { (try? await httpRequest(port: metaServerPort, path: "/api/v1/namespaces/default/pods/web").status) == 200 })
        #expect(await eventually { fixture.hub.channel(of: "edge-1")?.statistics(for: .state).unacknowledged == 0 })

        // DeviceTwin answers over the broker through EventBus.
        let device = try await FakeDevice(port: broker.port, subscriptions: ["$hw/events/device/ghost/twin/get/result"])
        #expect(await eventually {
            try? device.publish("$hw/events/device/ghost/twin/get", #"{"event_id":"x"}"#)
            return (try? await device.next(timeout: .milliseconds(300)))?.json["code"] as? Int == 404
        })
        device.client.close()

        let metrics = try await httpRequest(port: metricsPort, path: "/metrics").text()
        #expect(metrics.contains("edgecore_metamanager_stored_total 1"), "\(metrics)")
        #expect(metrics.contains("edgecore_edgehub_connected 1.0") || metrics.contains("edgecore_edgehub_connected 1"), "\(metrics)")
        #expect(metrics.contains("process_resident_memory_bytes"))

        // SIGTERM: a graceful stop.
        #expect(await edgecore.signal(SIGTERM, waitingUpTo: .seconds(15)) == 0, "\(log())")
        #expect(log().contains("edgecore stopped"))

        // The cloud goes away; edgecore restarts and still serves what it was given.
        await fixture.hub.stop()
        edgecore = try BackgroundProcess(edgecoreBinary, ["--config", fixture.directory + "/edgecore.yaml"], outputFile: fixture.directory + "/edgecore2.log")
        #expect(await eventually(timeout: .seconds(20)) { (try? await httpRequest(port: metaServerPort, path: "/api/v1/namespaces/default/pods/web").status) == 200 })
        let pod = try await httpRequest(port: metaServerPort, path: "/api/v1/namespaces/default/pods/web").text()
        #expect(pod.contains("nginx"))
        #expect(await edgecore.signal(SIGTERM, waitingUpTo: .seconds(15)) == 0)
        removeTemporaryDirectory(fixture.directory)
    }
}
