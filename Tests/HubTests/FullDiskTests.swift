import CloudHub
import EdgeHub
import Foundation
import NIOCore
import Testing
import TestSupport
import Transport

/// The fault suite's full disk: an edge's outbox on an 8 MiB tmpfs of its own (a real `ENOSPC`
/// from the file system, not a bound SQLite keeps), filled while the edge is offline.
@Suite("Fault suite: a full disk under the outbox", .serialized)
struct FullDiskTests {
    /// A tmpfs of `size` mounted on a new directory; unmounted and removed by `unmount()`.
    struct SmallFileSystem {
        let path: String

        init(size: String) throws {
            path = makeTemporaryDirectory()
            let result = try runProcess("/usr/bin/mount", ["-t", "tmpfs", "-o", "size=\(size)", "tmpfs", path])
            guard result.status == 0 else { throw TestTimeout(description: "mount -t tmpfs failed (root is needed): \(result.output)") }
        }

        /// Bytes the file system still has free.
        var freeBytes: Int {
            var stats = statvfs()
            guard statvfs(path, &stats) == 0 else { return -1 }
            return Int(stats.f_bavail) * Int(stats.f_bsize)
        }

        func unmount() {
            _ = try? runProcess("/usr/bin/umount", [path])
            removeTemporaryDirectory(path)
        }
    }

    @Test("a full disk refuses sends with a clear error, loses nothing stored, and sending resumes once delivery frees space")
    func fullDisk() async throws {
        let disk = try SmallFileSystem(size: "8m")
        defer { disk.unmount() }
        let fixture = try await HubFixture()
        var configuration = fixture.edgeConfiguration("full-disk", token: try fixture.hub.makeToken())
        configuration.outboxPath = disk.path + "/outbox.sqlite"
        configuration.preferQUIC = false
        let bus = MessageBus()
        let meta = bus.register(module: "metaManager", group: "meta")
        let edge = try EdgeHub(configuration: configuration, bus: bus, group: testGroup)
        fixture.hub.grant(EdgeObjectKey(kind: "pod", namespace: "default", name: "p"), to: "full-disk")

        // Offline (not started): reliable messages go to the outbox until the disk is full.
        let payload = String(repeating: "x", count: 4 * 1024)
        func message(_ sequence: Int) -> Message {
            Message(router: MessageRouter(source: "metaManager", destination: EdgeHub.moduleName, group: "resource", operation: "update",
                                          resource: "default/podstatus/p"), content: ByteBuffer(string: "\(sequence) \(payload)"))
        }
        var stored = 0
        var failure: (any Error)?
        while stored < 10_000 {
            do {
                try await edge.send(message(stored), on: .events, delivery: .reliable)
                stored += 1
            } catch {
                failure = error
                break
            }
        }
        guard case .outboxWriteFailed(let sqliteError)? = failure as? TransportError else {
            Issue.record("expected outboxWriteFailed, got \(String(describing: failure))")
            return
        }
        #expect(sqliteError.isFull, "\(sqliteError)")
        let explanation = String(describing: failure)
        #expect(explanation.contains("full"), "the error says why: \(explanation)")
        #expect(stored > 20, "only \(stored) messages fit")
        #expect(disk.freeBytes < 64 * 1024, "the disk still had \(disk.freeBytes) bytes free")

        // Online: everything stored arrives once, in order; then sends go through again.
        edge.start()
        let first = try await nextMessages(stored, from: fixture.hub, timeout: .seconds(60))
        #expect(first.map { Int(String(buffer: $0.message.content).prefix { $0 != " " }) } == Array(0..<stored))
        let more = 50
        for sequence in stored..<(stored + more) {
            // Acknowledged rows free their pages as the cloud confirms; retry while it has not yet.
            var sent = false
            for _ in 0..<200 where !sent {
                do {
                    try await edge.send(message(sequence), on: .events, delivery: .reliable)
                    sent = true
                } catch {
                    try await Task.sleep(for: .milliseconds(50))
                }
            }
            #expect(sent, "message \(sequence) never found room")
        }
        let second = try await nextMessages(more, from: fixture.hub, timeout: .seconds(60))
        #expect(second.map { Int(String(buffer: $0.message.content).prefix { $0 != " " }) } == Array(stored..<(stored + more)))
        print("fault: full disk: \(stored) messages of 4 KiB filled 8 MiB (4 MiB of it the reserve); all \(stored) then \(more) more delivered once, in order")
        await edge.stop()
        _ = meta
        await fixture.stop()
    }
}
