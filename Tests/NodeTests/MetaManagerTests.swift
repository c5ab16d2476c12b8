import CloudHub
import EdgeHub
import Foundation
import NIOCore
import Node
import TestSupport
import Testing
import Transport

/// One edge node's modules against a real CloudHub: EdgeHub and MetaManager on one bus, the
/// store in the fixture's directory, and a stand-in module (`edged`) that asks MetaManager.
struct MetaNode {
    let bus = MessageBus()
    let store: MetaStore
    let meta: MetaManager
    let hub: EdgeHub
    let edged: BusEndpoint

    init(fixture: HubFixture, node: String = "edge-1", configuration: MetaManagerConfiguration = MetaManagerConfiguration()) throws {
        store = try MetaStore(configuration: .init(path: fixture.directory + "/\(node)-meta.db"))
        meta = MetaManager(configuration: configuration, store: store, bus: bus)
        hub = try EdgeHub(configuration: fixture.edgeConfiguration(node, token: nil), bus: bus, group: testGroup)
        edged = bus.register(module: "edged", group: "edged")
        meta.start()
        hub.start()
    }

    func query(_ resource: String) async throws -> Message {
        let query = Message(router: MessageRouter(source: "edged", destination: MetaManager.moduleName, group: "meta", operation: "query", resource: resource))
        return try await edged.request(query, on: .request, timeout: .seconds(20))
    }

    func stop() async {
        await hub.stop()
        await meta.stop()
    }
}

func objectMessage(_ operation: String, _ resource: String, _ json: String) -> Message {
    Message(router: MessageRouter(source: "edgecontroller", group: "resource", operation: operation, resource: resource), content: ByteBuffer(string: json))
}

func configMapJSON(_ name: String, resourceVersion: Int, value: String) -> String {
    #"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"\#(name)","namespace":"default","resourceVersion":"\#(resourceVersion)"},"data":{"key":"\#(value)"}}"#
}

@Suite(.serialized) struct MetaManagerTests {
    @Test func aQueryOrAPatchAfterABurstOfWritesOnItsLaneSeesEveryOneOfThem() async throws {
        // Batches commit while the next is taken: what follows a write on its lane must still
        // see it.
        let directory = makeTemporaryDirectory()
        defer { removeTemporaryDirectory(directory) }
        let bus = MessageBus()
        let meta = MetaManager(store: try MetaStore(configuration: .init(path: directory + "/meta.db")), bus: bus)
        meta.start()
        let cloud = bus.register(module: "cloud", group: "cloud")
        for round in 0..<20 {
            for version in 1...50 {
                try await cloud.send(objectMessage("update", "default/configmap/c", configMapJSON("c", resourceVersion: round * 100 + version, value: "v\(version)")),
                                     toGroup: MetaManager.moduleGroup, on: .request)
            }
            let query = Message(router: MessageRouter(source: "cloud", destination: MetaManager.moduleName, group: "meta", operation: "query", resource: "default/configmap/c"))
            let queried = String(buffer: try await cloud.request(query, toGroup: MetaManager.moduleGroup, on: .request, timeout: .seconds(20)).content)
            #expect(queried.contains(#""resourceVersion":"\#(round * 100 + 50)""#) && queried.contains(#""key":"v50""#), "round \(round): \(queried)")
            try await cloud.send(objectMessage("patch", "default/configmap/c", #"{"data":{"round":"\#(round)"}}"#), toGroup: MetaManager.moduleGroup, on: .request)
            let merged = String(buffer: try await cloud.request(query, toGroup: MetaManager.moduleGroup, on: .request, timeout: .seconds(20)).content)
            #expect(merged.contains(#""key":"v50""#) && merged.contains(#""round":"\#(round)""#), "round \(round): \(merged)")
            for version in 51...60 {
                try await cloud.send(objectMessage("update", "default/configmap/c", configMapJSON("c", resourceVersion: round * 100 + version, value: "v\(version)")),
                                     toGroup: MetaManager.moduleGroup, on: .request)
            }
            let replaced = String(buffer: try await cloud.request(query, toGroup: MetaManager.moduleGroup, on: .request, timeout: .seconds(20)).content)
            #expect(replaced.contains(#""resourceVersion":"\#(round * 100 + 60)""#) && !replaced.contains(#""round""#), "round \(round): \(replaced)")
        }
        #expect(meta.statistics.stored == 20 * 61, "\(meta.statistics)")
        await meta.stop()
    }

    @Test func objectsDeliveredOnlineAreServedOfflineAndAfterARestart() async throws {
        let fixture = try await HubFixture()
        _ = try fixture.issueCredentials(for: "edge-1")
        // A long cloud timeout: an offline answer must not wait for it.
        var node: MetaNode? = try MetaNode(fixture: fixture, configuration: MetaManagerConfiguration(remoteQueryTimeout: .seconds(60)))
        try await fixture.hub.send(objectMessage("insert", "default/pod/web", podJSON("web", resourceVersion: 5)), to: "edge-1", on: .state, delivery: .reliable)
        try await fixture.hub.send(objectMessage("insert", "default/configmap/app", configMapJSON("app", resourceVersion: 7, value: "v7")), to: "edge-1", on: .state, delivery: .reliable)
        // An older copy arriving late changes nothing.
        try await fixture.hub.send(objectMessage("update", "default/pod/web", podJSON("web", resourceVersion: 4, image: "old")), to: "edge-1", on: .state, delivery: .reliable)
        #expect(await eventually { node!.meta.statistics.stored + node!.meta.statistics.stale == 3 })
        #expect(node!.meta.statistics.stale == 1)
        #expect(try await node!.store.get(ResourceKey(namespace: "default", type: "pod", name: "web"))?.resourceVersion == 5)
        #expect(await eventually { fixture.hub.channel(of: "edge-1")?.statistics(for: .state).unacknowledged == 0 })

        // Online: a configmap query goes to the cloud, whose newer answer is returned and cached.
        let cloud = Task {
            for await incoming in fixture.hub.incoming where incoming.message.router.operation == "query" {
                let answer = incoming.message.makeResponse(content: ByteBuffer(string: configMapJSON("app", resourceVersion: 8, value: "v8")))
                try await fixture.hub.send(answer, to: incoming.node, on: .request, delivery: .reliable)
                return incoming.message.router.resource
            }
            return ""
        }
        let online = try await node!.query("default/configmap/app")
        #expect(String(buffer: online.content).contains("v8"))
        #expect(try await cloud.value == "default/configmap/app")
        #expect(node!.meta.statistics.remoteAnswers == 1)

        // The cloud goes away: the store answers at once, not after the query timeout.
        await fixture.hub.stop()
        #expect(await eventually { node!.hub.backend == nil })
        let started = ContinuousClock.now
        let offline = try await node!.query("default/configmap/app")
        #expect(ContinuousClock.now - started < .seconds(10))
        #expect(String(buffer: offline.content).contains("v8"))
        let pods = try await node!.query("default/pod")
        #expect(String(buffer: pods.content).hasPrefix("[{") && String(buffer: pods.content).contains("\"web\""))
        let missing = try await node!.query("default/secret/nope")
        #expect(missing.router.operation == "error")
        #expect(String(buffer: missing.content).contains("not found"))

        // edgecore restarts (modules closed, store reopened from its file), the cloud still away.
        await node!.stop()
        node = nil
        let restarted = try MetaNode(fixture: fixture)
        let afterRestart = try await restarted.query("default/configmap/app")
        #expect(String(buffer: afterRestart.content).contains("v8"))
        #expect(try await restarted.store.get(ResourceKey(namespace: "default", type: "pod", name: "web"))?.resourceVersion == 5)
        // Edge applications list and get through MetaServer as well.
        let metaServer = MetaServer(configuration: .init(port: 0), store: restarted.store, group: testGroup)
        let port = try await metaServer.start()
        let pod = try await httpRequest(port: port, path: "/api/v1/namespaces/default/pods/web")
        #expect(pod.status == 200)
        #expect(try await pod.text().contains("nginx"))
        let configMaps = try await httpRequest(port: port, path: "/api/v1/configmaps")
        #expect(try await configMaps.text().contains("v8"))
        await metaServer.stop()
        await restarted.stop()
        removeTemporaryDirectory(fixture.directory)
    }

    @Test func aMessageIsAcknowledgedToTheCloudOnlyOnceStored() async throws {
        let fixture = try await HubFixture()
        _ = try fixture.issueCredentials(for: "edge-1")
        // First the node runs without a working MetaManager: a module takes the objects but
        // never stores them (edgecore dies before it can).
        let bus = MessageBus()
        let stuck = bus.register(module: MetaManager.moduleName, group: MetaManager.moduleGroup, acknowledgesHandling: true)
        let hub = try EdgeHub(configuration: fixture.edgeConfiguration("edge-1", token: nil), bus: bus, group: testGroup)
        hub.start()
        for index in 0..<20 {
            try await fixture.hub.send(objectMessage("insert", "default/pod/p\(index)", podJSON("p\(index)", resourceVersion: index + 1)), to: "edge-1", on: .state, delivery: .reliable)
        }
        _ = try await collect(20, from: stuck, lane: .state)
        try await Task.sleep(for: .milliseconds(200))
        #expect(fixture.hub.channel(of: "edge-1")?.statistics(for: .state).unacknowledged == 20)
        await hub.stop()
        // The node comes back with MetaManager: the cloud sends the 20 again and they are stored.
        let node = try MetaNode(fixture: fixture)
        #expect(await eventually(timeout: .seconds(20)) { (try? await node.store.list(type: "pod").objects.count) == 20 })
        #expect(await eventually { fixture.hub.channel(of: "edge-1")?.statistics(for: .state).unacknowledged == 0 })
        await node.stop()
        await fixture.stop()
    }

    @Test func badWritesAreRefusedWithAReasonAndLocalWritesGoToTheCloud() async throws {
        let fixture = try await HubFixture()
        _ = try fixture.issueCredentials(for: "edge-1")
        let node = try MetaNode(fixture: fixture, configuration: MetaManagerConfiguration(maxObjectBytes: 1024))
        try await node.hub.channel.waitUntilConnected()
        var request = objectMessage("insert", "default/pod/bad", "{not json")
        request.header.sync = true
        let malformed = try await fixture.hub.request(request, to: "edge-1", timeout: .seconds(10))
        #expect(malformed.router.operation == "error")
        #expect(String(buffer: malformed.content).contains("malformed object"))
        var big = objectMessage("insert", "default/pod/big", podJSON("big", resourceVersion: 1, image: String(repeating: "x", count: 2000)))
        big.header.sync = true
        #expect(String(buffer: try await fixture.hub.request(big, to: "edge-1", timeout: .seconds(10)).content).contains("limit of 1024"))
        var badResource = objectMessage("insert", "pods-without-slashes", podJSON("x", resourceVersion: 1))
        badResource.header.sync = true
        #expect(String(buffer: try await fixture.hub.request(badResource, to: "edge-1", timeout: .seconds(10)).content).contains("malformed resource"))
        #expect(node.meta.statistics.refused == 3)

        // Edged reports a pod's status: stored here, then on its way to the cloud. A status of
        // a pod the cloud never assigned to this node is refused by the cloud.
        try await fixture.hub.send(objectMessage("insert", "default/pod/web", podJSON("web", resourceVersion: 5)), to: "edge-1", on: .state, delivery: .reliable)
        #expect(await eventually { (try? await node.store.get(ResourceKey(namespace: "default", type: "pod", name: "web"))) != nil })
        // A burst: an update, a merge patch on top of it, and a malformed write between them.
        for message in [
            objectMessage("update", "default/pod/web", podJSON("web", resourceVersion: 6, image: "nginx:2")),
            objectMessage("insert", "default/pod/broken", "[1,2"),
            objectMessage("patch", "default/pod/web", #"{"metadata":{"resourceVersion":"7","labels":{"tier":"front"}}}"#),
        ] {
            try await fixture.hub.send(message, to: "edge-1", on: .state, delivery: .reliable)
        }
        #expect(await eventually { (try? await node.store.get(ResourceKey(namespace: "default", type: "pod", name: "web")))??.resourceVersion == 7 })
        let patched = try #require(try await node.store.get(ResourceKey(namespace: "default", type: "pod", name: "web")))
        #expect(patched.json.contains("nginx:2") && patched.json.contains("\"tier\":\"front\""))
        #expect(node.meta.statistics.refused == 4)
        #expect(await eventually { fixture.hub.channel(of: "edge-1")?.statistics(for: .state).unacknowledged == 0 })
        let status = Message(
            router: MessageRouter(source: "edged", destination: MetaManager.moduleName, group: "meta", operation: "update", resource: "default/podstatus/web"),
            content: ByteBuffer(string: #"{"metadata":{"name":"web","namespace":"default"},"status":{"phase":"Running"}}"#))
        try await node.edged.send(status, on: .state, delivery: .reliable)
        let upstream = try await nextMessages(1, from: fixture.hub)
        #expect(upstream.first?.message.router.resource == "default/podstatus/web")
        #expect(try await node.store.get(ResourceKey(namespace: "default", type: "podstatus", name: "web")) != nil)
        let foreign = Message(
            router: MessageRouter(source: "edged", destination: MetaManager.moduleName, group: "meta", operation: "update", resource: "default/podstatus/other"),
            content: ByteBuffer(string: #"{"metadata":{"name":"other","namespace":"default"},"status":{"phase":"Running"}}"#))
        try await node.edged.send(foreign, on: .state, delivery: .reliable)
        let drain = Task { for await _ in fixture.hub.incoming {} }  // the hub checks messages as they are taken
        #expect(await eventually { node.meta.statistics.errorsReceived == 1 })
        drain.cancel()
        await node.stop()
        await fixture.stop()
    }
}
