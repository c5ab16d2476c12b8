import CloudHub
import Foundation
import NIOCore
@testable import Node
import Testing
import TestSupport
import Transport

/// The edgecore executable beside the test bundle (`make test` builds every product).
let edgecoreBinary = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("edgecore").path

/// An edgecore.yaml joining `fixture`'s hub as edge-1 with everything under `edge`.
func edgecoreYAML(_ fixture: HubFixture, edge: String, eventBus: String, edged: String = "", metaServerPort: Int = freeLoopbackPort(),
                  metricsPort: Int = freeLoopbackPort()) throws -> String {
    """
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
      eventBus: \(eventBus)
      metaManager:
        metaServer: {server: "127.0.0.1:\(metaServerPort)"}
      edged: {hostnameOverride: edge-1, rootDirectory: \(edge)/edged\(edged.isEmpty ? "" : ", " + edged)}
    metrics: {server: "127.0.0.1:\(metricsPort)"}

    """
}

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
            ("modules:\n  edged:\n    containerLogMaxSize: lots\n", "modules.edged.containerLogMaxSize lots is not a size"),
            ("modules:\n  edged:\n    syncFrequency: 0\n", "modules.edged.syncFrequency must be at least 1 second"),
            ("modules:\n  metaManager:\n    enable: false\n", "Edged runs the pods metaManager holds"),
            ("modules:\n  edged:\n    containerRuntime: docker\n", "modules.edged.containerRuntime docker: use process or remote"),
            ("modules:\n  edged:\n    containerRuntime: remote\n    remoteRuntimeEndpoint: tcp://1.2.3.4:1\n", "modules.edged.remoteRuntimeEndpoint tcp://1.2.3.4:1 is not unix:///path/to/socket"),
            ("modules:\n  edged:\n    containerRuntime: remote\n    runtimeRequestTimeout: 0\n", "modules.edged.runtimeRequestTimeout must be at least 1 second"),
            ("modules:\n  edged:\n    containerRuntime: remote\n    runtimeMaxMessageSize: 1Ti\n", "modules.edged.runtimeMaxMessageSize 1Ti is not a size"),
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
        let yaml = try edgecoreYAML(fixture, edge: edge, eventBus: "{mqttServerExternal: tcp://127.0.0.1:\(broker.port)}",
                                    metaServerPort: metaServerPort, metricsPort: metricsPort)
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
        // The pod from the cloud, and Edged's node status reports.
        let stored = metrics.split(separator: "\n").first { $0.hasPrefix("edgecore_metamanager_stored_total ") }.flatMap { Double($0.split(separator: " ")[1]) }
        #expect((stored ?? 0) >= 2, "\(metrics)")
        #expect(metrics.contains("edgecore_edged_node_status_reports_total"), "\(metrics)")
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

    @Test func podsKeepRunningExactlyOnceAcrossKill9AndADeleteWhileDownIsCarriedOut() async throws {
        let fixture = try await HubFixture()
        defer { removeTemporaryDirectory(fixture.directory) }
        let edge = fixture.directory + "/edge"
        let runtime = try ProcessRuntime(root: edge + "/edged/containers")
        defer { for id in runtime.containers() { runtime.remove(id) } }  // containers outlive edgecore by design
        try await kill9Scenario(fixture, runtime: runtime, edged: "syncFrequency: 1") { name in
            #"{"name":"app","image":"none","command":["/bin/sh","-c","echo started >> \#(edge)/\#(name)-starts.log; exec sleep 300"]}"#
        }
    }

    @Test func podsInContainerdKeepRunningExactlyOnceAcrossKill9AndADeleteWhileDownIsCarriedOut() async throws {
        let containerd = try await LocalContainerd()
        let fixture = try await HubFixture()
        let edge = fixture.directory + "/edge"
        var failure: (any Error)?
        do {
            let runtime = try CRIRuntime(endpoint: containerd.endpoint, logRoot: edge + "/edged/logs")
            try await kill9Scenario(fixture, runtime: runtime, edged: "syncFrequency: 1, containerRuntime: remote, remoteRuntimeEndpoint: \"\(containerd.endpoint)\"",
                                    hostNetwork: true, volumes: #"[{"name":"out","hostPath":{"path":"\#(edge)","type":"Directory"}}]"#) { name in
                #"{"name":"app","image":"\#(LocalContainerd.image)","command":["sh","-c","echo started >> /out/\#(name)-starts.log; exec sleep 300"],"volumeMounts":[{"name":"out","mountPath":"/out"}]}"#
            }
        } catch {
            failure = error
        }
        await containerd.stop()
        removeTemporaryDirectory(fixture.directory)
        if let failure { throw failure }
    }

    /// Two pods run through edgecore on `runtime`; edgecore is killed with SIGKILL, one pod is
    /// deleted while it is down, and after a restart the other runs exactly once (its
    /// container writes a line per start to `{edge}/{pod}-starts.log`).
    private func kill9Scenario(_ fixture: HubFixture, runtime: any ContainerRuntime, edged: String, hostNetwork: Bool = false, volumes: String = "[]",
                               container: (String) -> String) async throws {
        let received = ReceivedStatuses(fixture.hub)
        defer { received.cancel() }
        let edge = fixture.directory + "/edge"
        try FileManager.default.createDirectory(atPath: edge, withIntermediateDirectories: true)
        let yaml = try edgecoreYAML(fixture, edge: edge, eventBus: "{enable: false}", edged: edged)
        try yaml.write(toFile: fixture.directory + "/edgecore.yaml", atomically: true, encoding: .utf8)
        let start = { (log: String) in try BackgroundProcess(edgecoreBinary, ["--config", fixture.directory + "/edgecore.yaml"], outputFile: fixture.directory + "/" + log) }
        var edgecore = try start("edgecore.log")
        defer { edgecore.stop() }
        let log = { (name: String) in (try? String(contentsOfFile: fixture.directory + "/" + name, encoding: .utf8)) ?? "" }
        #expect(await eventually(timeout: .seconds(30)) { fixture.hub.connection(of: "edge-1") != nil }, "\(log("edgecore.log"))")

        func pod(_ name: String, _ version: Int) -> String {
            #"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"\#(name)","namespace":"default","uid":"uid-\#(name)","resourceVersion":"\#(version)"},"spec":{"nodeName":"edge-1","terminationGracePeriodSeconds":1,"hostNetwork":\#(hostNetwork),"volumes":\#(volumes),"containers":[\#(container(name))]}}"#
        }
        for name in ["keep", "doomed"] {
            try await fixture.hub.send(objectMessage("insert", "default/pod/\(name)", pod(name, 5)), to: "edge-1", on: .state, delivery: .reliable)
        }
        #expect(await eventually(timeout: .seconds(30)) {
            ["keep", "doomed"].allSatisfy { received.latest("default/podstatus/\($0)")?[path: ["status", "phase"]] == .string("Running") }
        }, "\(log("edgecore.log"))")
        let keep = ContainerID(podUID: "uid-keep", name: "app", attempt: 0)
        guard case .running(let startedAt) = await runtime.state(of: keep) else { Issue.record("not running: \(log("edgecore.log"))"); return }

        // kill -9: the containers do not notice.
        #expect(await edgecore.signal(SIGKILL, waitingUpTo: .seconds(10)) != nil)
        #expect(await runtime.state(of: keep) == .running(startedAt: startedAt))
        // While the node is down the cloud deletes one pod.
        try await fixture.hub.send(objectMessage("delete", "default/pod/doomed", #"{"metadata":{"name":"doomed","namespace":"default","resourceVersion":"6"}}"#),
                                   to: "edge-1", on: .state, delivery: .reliable)

        edgecore = try start("edgecore2.log")
        #expect(await eventually(timeout: .seconds(30)) { fixture.hub.connection(of: "edge-1") != nil }, "\(log("edgecore2.log"))")
        #expect(await eventually(timeout: .seconds(20)) { await !runtime.pods().contains("uid-doomed") }, "the delete was carried out")
        // Several passes later the kept pod was adopted, not started again.
        try await Task.sleep(for: .seconds(3))
        #expect(await runtime.containers().filter { $0.podUID == "uid-keep" } == [keep])
        #expect(await runtime.state(of: keep) == .running(startedAt: startedAt))
        #expect(log("edge/keep-starts.log") == "started\n", "started exactly once")
        #expect(await edgecore.signal(SIGTERM, waitingUpTo: .seconds(15)) == 0, "\(log("edgecore2.log"))")
        #expect(await runtime.state(of: keep) == .running(startedAt: startedAt), "a graceful stop of edgecore leaves pods running, as kubelet's does")
    }
}
