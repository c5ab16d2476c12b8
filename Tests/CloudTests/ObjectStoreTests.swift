@testable import Cloud
import Foundation
import KubeModel
import Testing
import TestSupport
import Storage
import Transport

private func configMap(_ name: String, _ data: String, resourceVersion: String? = nil) throws -> JSONValue {
    let version = resourceVersion.map { #","resourceVersion":"\#($0)""# } ?? ""
    return try JSONValue(parsing: #"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"\#(name)","namespace":"default"\#(version)},"data":{"k":"\#(data)"}}"#)
}

private func key(_ name: String) -> ObjectKey { ObjectKey(resource: "configmaps", namespace: "default", name: name) }

@Suite struct ObjectStoreTests {
    @Test func createsUpdatesAndDeletesWithOptimisticConcurrency() async throws {
        let directory = makeTemporaryDirectory()
        defer { removeTemporaryDirectory(directory) }
        let store = try ObjectStore(configuration: .init(path: directory + "/api.db"))
        let created = try await store.create(key("a"), try configMap("a", "1"))
        #expect(created[path: ["metadata", "resourceVersion"]] == .string("1"))
        #expect(created[path: ["metadata", "generation"]] == .number("1"))
        #expect(created[path: ["metadata", "uid"]]?.stringValue?.count == 36)
        #expect(created[path: ["metadata", "creationTimestamp"]]?.stringValue?.hasSuffix("Z") == true)
        await #expect(throws: APIError.alreadyExists("configmaps", "a")) { try await store.create(key("a"), try configMap("a", "x")) }

        // A writer that read version 1 wins; a second one holding version 1 too is refused.
        let updated = try await store.update(key("a"), try configMap("a", "2", resourceVersion: "1"))
        #expect(updated[path: ["metadata", "resourceVersion"]] == .string("2"))
        #expect(updated[path: ["metadata", "uid"]] == created[path: ["metadata", "uid"]])
        #expect(updated[path: ["metadata", "generation"]] == .number("2"))
        await #expect(throws: APIError.conflict("configmaps", "a")) { try await store.update(key("a"), try configMap("a", "3", resourceVersion: "1")) }
        // Without a resourceVersion it is a blind update; a metadata-only change keeps the generation.
        var labelled = updated
        labelled.set(.string("x"), at: ["metadata", "labels", "tier"])
        labelled.set(nil, at: ["metadata", "resourceVersion"])
        #expect(try await store.update(key("a"), labelled)[path: ["metadata", "generation"]] == .number("2"))
        await #expect(throws: APIError.notFound("configmaps", "zz")) { try await store.update(key("zz"), try configMap("zz", "1")) }

        await #expect(throws: APIError.conflict("configmaps", "a")) { try await store.delete(key("a"), resourceVersion: "2") }
        let deleted = try await store.delete(key("a"), resourceVersion: "3")
        #expect(deleted[path: ["metadata", "resourceVersion"]] == .string("4"))
        #expect(try await store.get(key("a")) == nil)
        await #expect(throws: APIError.notFound("configmaps", "a")) { try await store.delete(key("a")) }
        #expect(store.revision == 4)
    }

    @Test func keepsUnknownFieldsAndItsRevisionAcrossAReopen() async throws {
        let directory = makeTemporaryDirectory()
        defer { removeTemporaryDirectory(directory) }
        let original = try JSONValue(parsing: Data(contentsOf: URL(fileURLWithPath: testdataDirectory + "/core.v1.Node.json")))
        var store: ObjectStore? = try ObjectStore(configuration: .init(path: directory + "/api.db"))
        var object = original
        object.set(nil, at: ["metadata", "resourceVersion"])
        _ = try await store!.create(ObjectKey(resource: "nodes", namespace: "", name: "nameValue"), object)
        await store!.close()
        store = nil
        let reopened = try ObjectStore(configuration: .init(path: directory + "/api.db"))
        #expect(reopened.revision == 1)
        var back = try #require(try await reopened.get(ObjectKey(resource: "nodes", namespace: "", name: "nameValue")))
        // Everything but the resourceVersion the store assigned is as the client sent it.
        #expect(back[path: ["metadata", "resourceVersion"]] == .string("1"))
        back.set(original[path: ["metadata", "resourceVersion"]], at: ["metadata", "resourceVersion"])
        #expect(back == original)
        #expect(try await reopened.list(resource: "nodes").objects.count == 1)
    }

    @Test func watchesResumeFromARevisionAndExpireAfterCompaction() async throws {
        let directory = makeTemporaryDirectory()
        defer { removeTemporaryDirectory(directory) }
        let store = try ObjectStore(configuration: .init(path: directory + "/api.db", historyLimit: 2))
        _ = try await store.create(key("a"), try configMap("a", "1"))
        let listed = try await store.list(resource: "configmaps", namespace: "default")
        let events = try await store.watch(resource: "configmaps", namespace: "default", after: listed.revision)
        _ = try await store.create(ObjectKey(resource: "configmaps", namespace: "other", name: "b"), try configMap("b", "1"))
        _ = try await store.update(key("a"), try configMap("a", "2"))
        _ = try await store.delete(key("a"))
        var iterator = events.makeAsyncIterator()
        var seen: [String] = []
        for _ in 0..<2 {
            let event = try #require(await iterator.next())
            seen.append("\(event.kind.rawValue) \(event.key.name) \(event.revision)")
        }
        #expect(seen == ["MODIFIED a 3", "DELETED a 4"])
        // Resuming after revision 1 replays 2–4; after compaction (2 kept: 3, 4) it is too old.
        let replay = try await store.watch(resource: "configmaps", after: 1)
        var replayed = replay.makeAsyncIterator()
        #expect(await replayed.next()?.revision == 2)
        try await store.compact()
        #expect(store.compactedRevision == 2)
        await #expect(throws: APIError.expired("too old resource version: 1 (2)")) { try await store.watch(resource: "configmaps", after: 1) }
        _ = try await store.watch(resource: "configmaps", after: 2)
    }
}

@Suite struct ObjectStoreNodeIndexTests {
    @Test func objectsAreListedByNodeAlsoInAStoreFromBeforeTheIndex() async throws {
        let directory = makeTemporaryDirectory()
        defer { removeTemporaryDirectory(directory) }
        let path = directory + "/old.db"
        // A store as the first version wrote it: no node column.
        do {
            let db = try Database(path: path)
            try await db.exclusive { db in try db.execute("""
                CREATE TABLE objects (key TEXT PRIMARY KEY, resource TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL,
                    value BLOB NOT NULL, create_revision INTEGER NOT NULL, mod_revision INTEGER NOT NULL);
                INSERT INTO objects VALUES ('pods/default/old', 'pods', 'default', 'old',
                    '{"metadata":{"name":"old","namespace":"default","resourceVersion":"1"},"spec":{"nodeName":"edge-1"}}', 1, 1);
                """) }
            await db.close()
        }
        let store = try ObjectStore(configuration: .init(path: path))
        let pod = { (name: String, node: String) in
            try JSONValue(parsing: #"{"metadata":{"name":"\#(name)","namespace":"default"},"spec":{"nodeName":"\#(node)"}}"#)
        }
        _ = try await store.create(ObjectKey(resource: "pods", namespace: "default", name: "a"), try pod("a", "edge-1"))
        _ = try await store.create(ObjectKey(resource: "pods", namespace: "default", name: "b"), try pod("b", "edge-2"))
        var moved = try await store.create(ObjectKey(resource: "pods", namespace: "default", name: "c"), try pod("c", "edge-2"))
        moved.set(.string("edge-1"), at: ["spec", "nodeName"])
        _ = try await store.update(ObjectKey(resource: "pods", namespace: "default", name: "c"), moved)
        let names = { (node: String) in
            try await store.listEncoded(resource: "pods", nodeName: node).objects.map { try JSONValue(parsing: $0)[path: ["metadata", "name"]]?.stringValue }
        }
        #expect(try await names("edge-1") == ["a", "c", "old"])
        #expect(try await names("edge-2") == ["b"])
        #expect(try await store.listEncoded(resource: "pods", namespace: "default").objects.count == 4)
    }
}
