import Foundation
import KubeModel
import NIOCore
import Node
import TestSupport
import Testing

/// A store with a MetaServer on a free loopback port.
struct MetaServerFixture {
    let directory = makeTemporaryDirectory()
    let store: MetaStore
    let server: MetaServer
    let port: Int

    init(historyLimit: Int = 10_000, configure: (inout MetaServer.Configuration) -> Void = { _ in }) async throws {
        store = try MetaStore(configuration: .init(path: directory + "/meta.db", historyLimit: historyLimit))
        var configuration = MetaServer.Configuration(port: 0)
        configure(&configuration)
        server = MetaServer(configuration: configuration, store: store, group: testGroup)
        port = try await server.start()
    }

    func put(_ name: String, namespace: String = "default", labels: [String: String] = [:], resourceVersion: Int) async throws {
        let labelJSON = labels.map { #""\#($0.key)":"\#($0.value)""# }.joined(separator: ",")
        let json = #"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"\#(name)","namespace":"\#(namespace)","labels":{\#(labelJSON)},"resourceVersion":"\#(resourceVersion)"},"spec":{}}"#
        _ = try await store.apply([.upsert(ResourceKey(namespace: namespace, type: "pod", name: name), json: json, resourceVersion: Int64(resourceVersion))])
    }

    func get(_ path: String) async throws -> (status: Int, json: [String: Any]) {
        let response = try await httpRequest(port: port, path: path)
        let text = try await response.text()
        return (response.status, (try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]) ?? [:])
    }

    func stop() async {
        await server.stop()
        removeTemporaryDirectory(directory)
    }
}

private func names(_ list: [String: Any]) -> [String] {
    (list["items"] as? [[String: Any]] ?? []).compactMap { ($0["metadata"] as? [String: Any])?["name"] as? String }
}

private func resourceVersion(_ object: [String: Any]) -> String? {
    (object["metadata"] as? [String: Any])?["resourceVersion"] as? String
}

/// A watch event line, decoded.
private func decodeEvent(_ line: String) -> (type: String, name: String?, resourceVersion: String?, code: Int?) {
    let event = (try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]) ?? [:]
    let object = event["object"] as? [String: Any] ?? [:]
    let metadata = object["metadata"] as? [String: Any]
    return (event["type"] as? String ?? "", metadata?["name"] as? String, metadata?["resourceVersion"] as? String, object["code"] as? Int)
}

@Suite struct MetaServerTests {
    @Test func servesByDefaultTheNodesSelectionOfTheOneResourceTable() {
        let served = MetaServer.Configuration.standardResources
        #expect(Set(served.map(\.plural)) == ["pods", "configmaps", "secrets", "services", "endpoints", "nodes", "devices", "devicemodels"])
        #expect(served.allSatisfy { APIResource.standard.contains($0) })
        // MetaManager's types, as KubeEdge's resource strings write them.
        #expect(Set(served.map(\.edgeType)) == ["pod", "configmap", "secret", "service", "endpoints", "node", "device", "devicemodel"])
    }

    @Test func listsAndGetsWithSelectorsAndAnswersErrorsAsKubernetesStatus() async throws {
        let fixture = try await MetaServerFixture()
        try await fixture.put("web", labels: ["app": "web", "tier": "front"], resourceVersion: 11)
        try await fixture.put("db", labels: ["app": "db"], resourceVersion: 12)
        try await fixture.put("dns", namespace: "kube-system", resourceVersion: 13)

        let all = try await fixture.get("/api/v1/pods")
        #expect(all.status == 200)
        #expect(all.json["kind"] as? String == "PodList")
        #expect(names(all.json) == ["db", "web", "dns"])
        #expect(resourceVersion(all.json) == "3")
        #expect(names(try await fixture.get("/api/v1/namespaces/default/pods").json) == ["db", "web"])
        #expect(names(try await fixture.get("/api/v1/namespaces/default/pods?labelSelector=app%3Dweb").json) == ["web"])
        #expect(names(try await fixture.get("/api/v1/pods?labelSelector=app,app!=db").json) == ["web"])
        #expect(names(try await fixture.get("/api/v1/pods?labelSelector=!app").json) == ["dns"])
        #expect(names(try await fixture.get("/api/v1/pods?fieldSelector=metadata.name%3Ddns").json) == ["dns"])

        let one = try await fixture.get("/api/v1/namespaces/default/pods/web")
        #expect(one.status == 200)
        // The store's revision, not the cloud's 11: this server's list, get and watch agree.
        #expect(resourceVersion(one.json) == "1")

        let missing = try await fixture.get("/api/v1/namespaces/default/pods/nope")
        #expect(missing.status == 404)
        #expect(missing.json["kind"] as? String == "Status" && missing.json["reason"] as? String == "NotFound")
        #expect(try await fixture.get("/api/v1/namespaces/default/widgets").status == 404)
        #expect(try await fixture.get("/api/v1/namespaces/default/nodes").status == 404)
        #expect(try await fixture.get("/api/v1/pods?labelSelector=app%20in%20(a)").status == 200, "set-based terms select")
        let badSelector = try await fixture.get("/api/v1/pods?labelSelector=app%20in%20(a")
        #expect(badSelector.status == 400)
        #expect((badSelector.json["message"] as? String)?.contains("unbalanced parentheses") == true)
        #expect(try await fixture.get("/api/v1/pods?fieldSelector=spec.nodeName%3Dx").status == 400)
        let post = try await httpRequest(.POST, port: fixture.port, path: "/api/v1/namespaces/default/pods", body: "{}")
        #expect(post.status == 405)
        #expect(try await fixture.get("/apis/devices.kubeedge.io/v1beta1/devices").json["kind"] as? String == "DeviceList")
        await fixture.stop()
    }

    @Test func watchesResumeFromAResourceVersionAndExpireWhenCompacted() async throws {
        let fixture = try await MetaServerFixture(historyLimit: 3)
        try await fixture.put("a", resourceVersion: 1)
        let list = try await fixture.get("/api/v1/namespaces/default/pods")
        let listed = try #require(resourceVersion(list.json))

        let watch = try await httpRequest(port: fixture.port, path: "/api/v1/namespaces/default/pods?watch=true&resourceVersion=\(listed)")
        #expect(watch.status == 200)
        var lines = watch.lines().makeAsyncIterator()
        try await fixture.put("b", resourceVersion: 2)
        try await fixture.put("a", resourceVersion: 3)
        _ = try await fixture.store.apply([.delete(ResourceKey(namespace: "default", type: "pod", name: "b"), resourceVersion: nil)])
        var seen: [String] = []
        var lastVersion = ""
        for _ in 0..<3 {
            let event = decodeEvent(try #require(try await lines.next()))
            seen.append("\(event.type) \(event.name ?? "?")")
            lastVersion = event.resourceVersion ?? ""
        }
        #expect(seen == ["ADDED b", "MODIFIED a", "DELETED b"])
        #expect(lastVersion == "4")

        // A client resuming from an event it saw gets only what came after.
        try await fixture.put("c", resourceVersion: 5)
        let resumed = try await httpRequest(port: fixture.port, path: "/api/v1/namespaces/default/pods?watch=true&resourceVersion=\(lastVersion)&timeoutSeconds=1")
        var resumedLines: [String] = []
        for try await line in resumed.lines() { resumedLines.append("\(decodeEvent(line).type) \(decodeEvent(line).name ?? "?")") }
        #expect(resumedLines == ["ADDED c"])

        let expired = try await httpRequest(port: fixture.port, path: "/api/v1/pods?watch=1&resourceVersion=0")
        // resourceVersion=0 means "any": the current state comes as ADDED events instead.
        var expiredLines = expired.lines().makeAsyncIterator()
        #expect(decodeEvent(try #require(try await expiredLines.next())).type == "ADDED")
        // Three changes kept (3–5): resuming after revision 1 would miss 2, so it is a 410 ERROR event.
        let tooOld = try await httpRequest(port: fixture.port, path: "/api/v1/pods?watch=1&resourceVersion=1")
        var tooOldLines: [String] = []
        for try await line in tooOld.lines() { tooOldLines.append(line) }
        #expect(tooOldLines.count == 1)
        #expect(decodeEvent(tooOldLines[0]).type == "ERROR" && decodeEvent(tooOldLines[0]).code == 410)
        await fixture.stop()
    }

    @Test func aWatchFiltersByLabelSendsBookmarksAndEndsAtItsTimeout() async throws {
        let fixture = try await MetaServerFixture { $0.bookmarkInterval = .milliseconds(200) }
        try await fixture.put("web", labels: ["app": "web"], resourceVersion: 1)
        try await fixture.put("db", labels: ["app": "db"], resourceVersion: 2)
        let started = ContinuousClock.now
        let watch = try await httpRequest(port: fixture.port, path: "/api/v1/pods?watch=true&labelSelector=app%3Dweb&allowWatchBookmarks=true&timeoutSeconds=6")
        var types: [String] = []
        var names: [String] = []
        var wrote = false
        for try await line in watch.lines() {
            let event = decodeEvent(line)
            types.append(event.type)
            if event.type != "BOOKMARK" { names.append(event.name ?? "?") }
            if !wrote {
                // The watch is running (its first event arrived): change both pods. (The
                // timeout leaves room for a loaded machine to deliver that first event late.)
                wrote = true
                try await fixture.put("db", labels: ["app": "db"], resourceVersion: 3)
                try await fixture.put("web", labels: ["app": "web"], resourceVersion: 4)
            }
        }
        let elapsed = ContinuousClock.now - started
        #expect(names == ["web", "web"])
        #expect(types.first == "ADDED" && types.contains("MODIFIED"))
        #expect(types.filter { $0 == "BOOKMARK" }.count >= 2)
        #expect(elapsed >= .milliseconds(5900) && elapsed < .seconds(30))
        // The watch's connection is closed and the server stops with watches open.
        let open = try await httpRequest(port: fixture.port, path: "/api/v1/pods?watch=true")
        _ = open
        #expect(await eventually { fixture.server.openConnections == 1 })
        await fixture.stop()
        #expect(fixture.server.openConnections == 0)
    }
}
