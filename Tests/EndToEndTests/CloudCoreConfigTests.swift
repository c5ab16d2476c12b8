import Foundation
import Testing
import TestSupport

/// cloudcore.yaml: the defaults print, and each setting cloudcore cannot honour is refused at
/// start with the key named (before anything listens).
struct CloudCoreConfigTests {
    @Test func defaultConfigPrintsAndBadConfigsAreRefusedWithTheKeyNamed() throws {
        let directory = makeTemporaryDirectory()
        defer { removeTemporaryDirectory(directory) }
        let cloudcore = productDirectory + "/cloudcore"
        let printed = try runProcess(cloudcore, ["--defaultconfig"])
        #expect(printed.status == 0)
        #expect(printed.output.contains("cloudHub:") && printed.output.contains("port: 10000") && printed.output.contains("monitorServer: 127.0.0.1:9091"))
        #expect(printed.output.contains("syncController:") && printed.output.contains("deviceController:") && printed.output.contains("kubeConfig: ''"))
        #expect(printed.output.contains("maxConnections: 12000") && printed.output.contains("maxHandshakes: 1000") && printed.output.contains("helloTimeout: 10"))
        for (yaml, complaint) in [
            ("modules:\n  cloudHub:\n    bogus: 1\n", "unknown key modules.cloudHub.bogus"),
            ("modules:\n  cloudHub:\n    enable: false\n", "modules.cloudHub.enable"),
            ("modules:\n  cloudHub:\n    websocket: {port: 70000}\n", "modules.cloudHub.websocket.port 70000 is not a port"),
            ("modules:\n  cloudHub:\n    quic: {address: 10.0.0.1}\n", "must listen on the same address"),
            ("modules:\n  cloudHub:\n    https: {enable: false}\n", "modules.cloudHub.https.enable"),
            ("modules:\n  cloudHub:\n    nodeLimit: 0\n", "modules.cloudHub.nodeLimit must be at least 1"),
            ("modules:\n  cloudHub:\n    maxConnections: 0\n", "modules.cloudHub.maxConnections must be at least 1"),
            ("modules:\n  cloudHub:\n    maxHandshakes: 0\n", "modules.cloudHub.maxHandshakes must be at least 1"),
            ("modules:\n  cloudHub:\n    helloTimeout: 0\n", "modules.cloudHub.helloTimeout must be at least 1"),
            ("modules:\n  cloudHub:\n    keepaliveInterval: soon\n", "keepaliveInterval"),
            ("modules:\n  edgeController:\n    nodeNotReadyGracePeriod: 0\n", "nodeNotReadyGracePeriod must be at least 1 second"),
            ("modules:\n  syncController:\n    concurrentWrites: 0\n", "concurrentWrites must be at least 1"),
            ("modules:\n  edgeController:\n    upstreamWorkers: 0\n", "modules.edgeController.upstreamWorkers must be at least 1"),
            ("modules:\n  deviceController:\n    batchInterval: -5\n", "modules.deviceController.batchInterval must not be negative"),
            ("commonConfig:\n  monitorServer: nowhere\n", "commonConfig.monitorServer"),
            ("logLevel: loud\n", "logLevel loud"),
            ("- a list\n", "mapping"),
        ] {
            try yaml.write(toFile: directory + "/cloudcore.yaml", atomically: true, encoding: .utf8)
            let run = try runProcess(cloudcore, ["--config", directory + "/cloudcore.yaml"])
            #expect(run.status != 0, "\(yaml)")
            #expect(run.output.contains(complaint), "\(run.output)")
        }
        let missing = try runProcess(cloudcore, ["--config", directory + "/absent.yaml"])
        #expect(missing.status != 0 && missing.output.contains("--defaultconfig"))
        // A kubeconfig that cannot be read: a clear error, nothing left listening.
        try "kubeAPIConfig: {kubeConfig: \(directory)/absent.kubeconfig}\ncommonConfig: {monitorServer: \"\"}\nmodules:\n  cloudHub:\n    certificatesDirectory: \(directory)/ca\n    outbox: \(directory)/outbox.db\n    websocket: {port: 0}\n    quic: {port: 0}\n    https: {port: 0}\n"
            .write(toFile: directory + "/cloudcore.yaml", atomically: true, encoding: .utf8)
        let unreadable = try runProcess(cloudcore, ["--config", directory + "/cloudcore.yaml"])
        #expect(unreadable.status != 0 && unreadable.output.contains("kubeAPIConfig.kubeConfig \(directory)/absent.kubeconfig"), "\(unreadable.output)")
    }
}
