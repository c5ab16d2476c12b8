import Foundation
import NIOCore
import NIOPosix
import Testing
import TestSupport

/// SIGTERM stops both daemons gracefully and promptly while they are busy: a node connected, a
/// kubectl watch open on the API server, a watch open on the edge's MetaServer and a request
/// there that never finishes arriving. Each daemon's services return (the daemon logs that it
/// stopped and exits 0) within 10 s.
@Suite(.serialized) struct ShutdownTests {
    @Test func cloudcoreAndEdgecoreStopWithin10SecondsOfSIGTERMWhileBusy() async throws {
        let cluster = try await EdgeCluster()
        defer { cluster.end() }
        let cloud = cluster.cloud
        let edge = try await cluster.addEdge("shutdown-edge")
        #expect(await eventually(timeout: .seconds(30)) {
            await cloud.jsonPath("{.status.conditions[?(@.type==\"Ready\")].status}", of: "node", "shutdown-edge") == "True"
        }, "\(cloud.log)")

        // A kubectl watch on the API server, open for as long as the server serves it.
        let watch = try BackgroundProcess("/usr/bin/kubectl", ["--kubeconfig", cloud.kubeconfig, "get", "configmaps", "--watch", "--request-timeout=0"],
                                          outputFile: cluster.directory + "/kubectl-watch.log")
        defer { watch.stop() }
        // On the edge: a MetaServer watch, and a request whose head never ends.
        let edgeWatch = try await httpRequest(port: edge.metaServerPort, path: "/api/v1/namespaces/default/configmaps?watch=true", timeout: .seconds(60))
        #expect(edgeWatch.status == 200)
        let stalled = try await ClientBootstrap(group: testGroup).connect(host: "127.0.0.1", port: edge.metaServerPort).get()
        defer { stalled.close(promise: nil) }
        try await stalled.writeAndFlush(ByteBuffer(string: "GET /api/v1/pods HTTP/1.1\r\nHost: edge\r\n")).get()
        try await Task.sleep(for: .seconds(1))
        #expect(watch.isRunning, "the kubectl watch is open")

        // cloudcore first (the node is still connected), then edgecore.
        let cloudStart = ContinuousClock.now
        let cloudStatus = await cloud.stop()
        let cloudTook = ContinuousClock.now - cloudStart
        #expect(cloudStatus == 0, "\(cloud.log)")
        #expect(cloudTook < .seconds(10), "cloudcore took \(cloudTook) to stop")
        #expect(cloud.log.contains("cloudcore stopped"), "\(cloud.log)")

        let edgeStart = ContinuousClock.now
        let edgeStatus = await edge.stop()
        let edgeTook = ContinuousClock.now - edgeStart
        #expect(edgeStatus == 0, "\(edge.log)")
        #expect(edgeTook < .seconds(10), "edgecore took \(edgeTook) to stop")
        #expect(edge.log.contains("edgecore stopped"), "\(edge.log)")
        // The watch the edge served ended with it.
        #expect(await eventually(timeout: .seconds(5)) { !stalled.isActive })
    }
}
