import Foundation
import Testing
import TestSupport

/// The fault suite's real link-down: edgecore in a network namespace of its own, joined to the
/// host by a veth pair the test creates (10.213.x.0/30), cloudcore listening on the host end.
/// Taking the host end down is a link failure, not a proxy's simulation: the cloud must mark
/// the node not ready, the edge must go on serving its objects locally, and once the link is
/// up again the edge must converge to what changed meanwhile. FAULT_LINK_DOWN_SECONDS (6).
@Suite("Fault suite: a real link down between two network namespaces", .serialized)
struct LinkDownTests {
    static let downSeconds = ProcessInfo.processInfo.environment["FAULT_LINK_DOWN_SECONDS"].flatMap(Int.init) ?? 6

    /// A network namespace and a veth pair to it; `remove()` deletes both.
    struct VethNamespace {
        let name: String
        let hostInterface: String
        let hostAddress: String
        let namespaceAddress: String

        init() throws {
            let tag = String(UInt32.random(in: 0..<0xFFFF), radix: 16)
            let subnet = Int.random(in: 1..<250)
            name = "ke-link-\(tag)"
            hostInterface = "kl\(tag)h"
            hostAddress = "10.213.\(subnet).1"
            namespaceAddress = "10.213.\(subnet).2"
            let inside = "kl\(tag)n"
            for command in [
                ["netns", "add", name],
                ["link", "add", hostInterface, "type", "veth", "peer", "name", inside],
                ["link", "set", inside, "netns", name],
                ["addr", "add", hostAddress + "/30", "dev", hostInterface],
                ["link", "set", hostInterface, "up"],
                ["netns", "exec", name, "ip", "addr", "add", namespaceAddress + "/30", "dev", inside],
                ["netns", "exec", name, "ip", "link", "set", inside, "up"],
                ["netns", "exec", name, "ip", "link", "set", "lo", "up"],
            ] {
                let result = try runProcess("/usr/sbin/ip", command)
                guard result.status == 0 else {
                    remove()
                    throw TestTimeout(description: "ip \(command.joined(separator: " ")) failed (root is needed): \(result.output)")
                }
            }
        }

        /// Takes the host end of the link down or up.
        func setLink(up: Bool) throws {
            let result = try runProcess("/usr/sbin/ip", ["link", "set", hostInterface, up ? "up" : "down"])
            guard result.status == 0 else { throw TestTimeout(description: "ip link set \(hostInterface) failed: \(result.output)") }
        }

        /// `curl` run inside the namespace: what the edge serves there, link or no link.
        func get(_ url: String) -> String? {
            guard let result = try? runProcess("/usr/sbin/ip", ["netns", "exec", name, "curl", "-sf", "--max-time", "5", url]), result.status == 0 else { return nil }
            return result.output
        }

        func remove() {
            _ = try? runProcess("/usr/sbin/ip", ["link", "del", hostInterface])
            _ = try? runProcess("/usr/sbin/ip", ["netns", "del", name])
        }
    }

    static func configMaps(_ count: Int, value: String) -> String {
        (0..<count).map { "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: link-\($0), namespace: default}\ndata: {value: \"\(value)\"}\n" }
            .joined(separator: "---\n")
    }

    @Test("the cloud marks the node not ready, the edge serves locally, and both converge once the link is back")
    func linkDown() async throws {
        let link = try VethNamespace()
        defer { link.remove() }
        let directory = makeTemporaryDirectory()
        defer { removeTemporaryDirectory(directory) }
        let broker = try await MosquittoBroker()
        defer { broker.stop() }
        let cloud = try CloudCoreProcess(directory: directory + "/cloud", hubAddress: link.hostAddress,
                                         hubSettings: ["advertiseAddress: [\(link.hostAddress)]"])
        try await cloud.start()
        defer { cloud.kill9() }
        let edge = try EdgeCoreProcess(name: "link-edge", directory: directory + "/link-edge", cloud: cloud, broker: broker,
                                       cloudHost: link.hostAddress, namespace: link.name, localAddress: link.namespaceAddress)
        try await edge.start()
        defer { edge.kill9() }

        let count = 10
        try await cloud.apply(Self.configMaps(count, value: "before"))
        try await cloud.apply("""
            apiVersion: v1
            kind: Pod
            metadata: {name: linked, namespace: default}
            spec:
              nodeName: link-edge
              containers:
              - {name: main, image: busybox, command: ["/bin/sh", "-c", "exec sleep 3600"], envFrom: [\(
                (0..<count).map { "{configMapRef: {name: link-\($0)}}" }.joined(separator: ", "))]}

            """)
        func edgeHolds(_ value: String) async -> Bool {
            for index in 0..<count {
                guard configMapValue(await edge.localObject("/api/v1/namespaces/default/configmaps/link-\(index)"), "value") == value else { return false }
            }
            return true
        }
        let ready = "{.status.conditions[?(@.type==\"Ready\")].status}"
        #expect(await eventually(timeout: .seconds(60)) { await edgeHolds("before") }, "\(edge.log)")
        #expect(await eventually(timeout: .seconds(30)) { await cloud.jsonPath(ready, of: "node", "link-edge") == "True" })

        // Link down: the cloud notices, the edge keeps serving what it holds.
        try link.setLink(up: false)
        let down = ContinuousClock.now
        #expect(await eventually(timeout: .seconds(30)) { await cloud.jsonPath(ready, of: "node", "link-edge") == "Unknown" }, "\(cloud.log)")
        let noticed = ContinuousClock.now - down
        try await cloud.apply(Self.configMaps(count, value: "during"))
        let local = link.get("http://127.0.0.1:\(edge.metaServerPort)/api/v1/namespaces/default/configmaps/link-0")
        #expect(local?.contains("\"before\"") == true, "the edge did not serve its ConfigMap while cut off: \(local ?? "no answer")")
        let remaining = Duration.seconds(Self.downSeconds) - (ContinuousClock.now - down)
        if remaining > .zero { try await Task.sleep(for: remaining) }

        // Link up: the edge converges to what changed while it was cut off.
        try link.setLink(up: true)
        let up = ContinuousClock.now
        #expect(await eventually(timeout: .seconds(60)) { await edgeHolds("during") }, "\(edge.log)")
        let converged = ContinuousClock.now - up
        #expect(await eventually(timeout: .seconds(30)) { await cloud.jsonPath(ready, of: "node", "link-edge") == "True" })
        func seconds(_ duration: Duration) -> Double { Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18 }
        print(String(format: "fault: link down (veth between network namespaces) for %.1f s: the cloud marked the node not ready after %.2f s; the edge served its ConfigMaps locally meanwhile; %d changed ConfigMaps converged %.2f s after the link came back",
                     seconds(up - down), seconds(noticed), count, seconds(converged)))
    }
}
