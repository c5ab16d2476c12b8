import Foundation
import Node
import Storage
import TestSupport
import Testing

/// A Kubernetes-shaped object for the store tests.
func podJSON(_ name: String, namespace: String = "default", resourceVersion: Int, image: String = "nginx") -> String {
    #"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"\#(name)","namespace":"\#(namespace)","resourceVersion":"\#(resourceVersion)","uid":"uid-\#(name)"},"spec":{"containers":[{"name":"c","image":"\#(image)"}]}}"#
}

@Suite struct MetaStoreTests {
    @Test func resourceVersionsNeverGoBackwardsEvenAcrossADelete() async throws {
        let directory = makeTemporaryDirectory()
        defer { removeTemporaryDirectory(directory) }
        let store = try MetaStore(configuration: .init(path: directory + "/meta.db"))
        let key = ResourceKey(namespace: "default", type: "pod", name: "web")
        #expect(try await store.apply([.upsert(key, json: podJSON("web", resourceVersion: 5), resourceVersion: 5)]).first.map(isApplied) == true)
        #expect(try await store.apply([.upsert(key, json: podJSON("web", resourceVersion: 3), resourceVersion: 3)]) == [.stale(stored: 5)])
        #expect(try await store.get(key)?.resourceVersion == 5)
        // A delete older than what is stored is ignored; a current one removes the object.
        #expect(try await store.apply([.delete(key, resourceVersion: 4)]) == [.stale(stored: 5)])
        #expect(try await store.apply([.delete(key, resourceVersion: 6)]).first.map(isApplied) == true)
        #expect(try await store.get(key) == nil)
        // A late copy from before the delete does not bring the object back; a newer one does.
        #expect(try await store.apply([.upsert(key, json: podJSON("web", resourceVersion: 5), resourceVersion: 5)]) == [.stale(stored: 6)])
        #expect(try await store.apply([.delete(key, resourceVersion: nil)]) == [.absent])
        #expect(try await store.apply([.upsert(key, json: podJSON("web", resourceVersion: 9), resourceVersion: 9)]).first.map(isApplied) == true)
        #expect(try await store.get(key)?.resourceVersion == 9)
    }

    @Test func listsByTypeAndNamespaceAndSurvivesAReopen() async throws {
        let directory = makeTemporaryDirectory()
        defer { removeTemporaryDirectory(directory) }
        var store: MetaStore? = try MetaStore(configuration: .init(path: directory + "/meta.db"))
        _ = try await store!.apply([
            .upsert(ResourceKey(namespace: "default", type: "pod", name: "b"), json: podJSON("b", resourceVersion: 2), resourceVersion: 2),
            .upsert(ResourceKey(namespace: "default", type: "pod", name: "a"), json: podJSON("a", resourceVersion: 1), resourceVersion: 1),
            .upsert(ResourceKey(namespace: "kube-system", type: "pod", name: "c"), json: podJSON("c", namespace: "kube-system", resourceVersion: 3), resourceVersion: 3),
            .upsert(ResourceKey(namespace: "default", type: "configmap", name: "a"), json: #"{"metadata":{"name":"a"}}"#, resourceVersion: nil),
        ])
        let revision = store!.revision
        #expect(revision == 4)
        await store!.database.close()
        store = nil
        let reopened = try MetaStore(configuration: .init(path: directory + "/meta.db"))
        #expect(reopened.revision == revision)
        #expect(try await reopened.list(type: "pod").objects.map(\.key.name) == ["a", "b", "c"])
        #expect(try await reopened.list(type: "pod", namespace: "default").objects.map(\.key.name) == ["a", "b"])
        #expect(try await reopened.list(type: "configmap").revision == revision)
        #expect(try await reopened.get(ResourceKey(namespace: "kube-system", type: "pod", name: "c"))?.json.contains("kube-system") == true)
    }

    @Test func watchersResumeFromHistoryAndAreToldWhenItIsCompacted() async throws {
        let directory = makeTemporaryDirectory()
        defer { removeTemporaryDirectory(directory) }
        let store = try MetaStore(configuration: .init(path: directory + "/meta.db", historyLimit: 5))
        for index in 1...4 {
            _ = try await store.apply([.upsert(ResourceKey(namespace: "default", type: "pod", name: "p\(index)"), json: podJSON("p\(index)", resourceVersion: index), resourceVersion: Int64(index))])
        }
        _ = try await store.apply([.upsert(ResourceKey(namespace: "default", type: "configmap", name: "x"), json: #"{"metadata":{"name":"x"}}"#, resourceVersion: nil)])
        // From revision 2: pods 3 and 4 (the configmap is filtered out), then live changes.
        let stream = try await store.watch(type: "pod", namespace: "default", after: 2)
        _ = try await store.apply([.delete(ResourceKey(namespace: "default", type: "pod", name: "p1"), resourceVersion: nil)])
        var iterator = stream.makeAsyncIterator()
        var seen: [String] = []
        for _ in 0..<3 {
            guard let event = await iterator.next() else { break }
            seen.append("\(event.kind.rawValue) \(event.object.key.name) @\(event.object.revision)")
        }
        #expect(seen == ["ADDED p3 @3", "ADDED p4 @4", "DELETED p1 @6"])
        // Five changes kept: revisions 2–6. Revision 0 is too old.
        await #expect(throws: MetaStoreError.revisionCompacted(oldest: 2)) { _ = try await store.watch(type: "pod", after: 0) }
        _ = try await store.watch(type: "pod", after: 1)
    }

    @Test func aSlowWatcherIsCutOffRatherThanBufferingWithoutBound() async throws {
        let directory = makeTemporaryDirectory()
        defer { removeTemporaryDirectory(directory) }
        let store = try MetaStore(configuration: .init(path: directory + "/meta.db", watcherBuffer: 10))
        let stream = try await store.watch(type: "pod", after: store.revision)
        #expect(store.watcherCount == 1)
        for index in 0..<20 {
            _ = try await store.apply([.upsert(ResourceKey(namespace: "default", type: "pod", name: "p\(index)"), json: podJSON("p\(index)", resourceVersion: index), resourceVersion: nil)])
        }
        var received = 0
        for await _ in stream { received += 1 }
        #expect(received == 10)
        #expect(store.watcherCount == 0)
    }

    @Test func sharesItsFileWithDeviceTwinAsEdgecoreDoes() async throws {
        let directory = makeTemporaryDirectory()
        defer { removeTemporaryDirectory(directory) }
        // One database object for the file, as edgecore opens it.
        let database = try Database(path: directory + "/edgecore.db")
        let store = try MetaStore(configuration: .init(path: directory + "/edgecore.db"), database: database)
        _ = try await store.get(ResourceKey(namespace: "default", type: "pod", name: "a"))
        let devices = try DeviceStore(database: database)
        #expect(try await store.apply([.upsert(ResourceKey(namespace: "default", type: "pod", name: "a"), json: podJSON("a", resourceVersion: 1), resourceVersion: 1)]).count == 1)
        #expect(devices.count == 0)
    }

    @Test func aFullDiskFailsTheWriteCleanlyAndKeepsWhatWasStored() async throws {
        let directory = makeTemporaryDirectory()
        defer { removeTemporaryDirectory(directory) }
        let store = try MetaStore(configuration: .init(path: directory + "/meta.db", maxSizeBytes: 256 * 1024))
        let big = String(repeating: "x", count: 8 * 1024)
        var stored = 0
        var failure: MetaError?
        for index in 0..<200 {
            let key = ResourceKey(namespace: "default", type: "configmap", name: "c\(index)")
            do {
                _ = try await store.apply([.upsert(key, json: #"{"metadata":{"name":"c\#(index)"},"data":{"v":"\#(big)"}}"#, resourceVersion: Int64(index))])
                stored += 1
            } catch {
                failure = error
                break
            }
        }
        #expect(stored > 5 && stored < 200)
        guard case .storage(let reason)? = failure else {
            Issue.record("expected a storage error, got \(String(describing: failure))")
            return
        }
        #expect(reason.contains("full"))
        #expect(try await store.list(type: "configmap").objects.count == stored)
        #expect(store.revision == Int64(stored))
    }
}

func isApplied(_ outcome: MetaWriteOutcome) -> Bool {
    if case .applied = outcome { return true }
    return false
}
