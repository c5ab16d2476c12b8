import CloudHub
import EdgeHub
import Foundation
import NIOCore
import Synchronization
import Testing
import TestSupport
import Transport

/// The fault suite: edges talk to a real CloudHub through chaos proxies (UDP for QUIC, TCP for
/// WebSocket; every other node prefers WebSocket) while faults are injected phase by phase — loss with duplication and reordering,
/// delay with jitter, a bandwidth cap, blackhole partitions longer than dead-peer detection,
/// connection resets — and reliable traffic flows both ways. The checker then requires every
/// reliable message to have reached the application exactly once and in lane order, and state
/// messages to have converged to each key's latest value.
///
/// Bounded by default (`make test`); `make chaos` sets `FAULT_PHASE_SECONDS` and `FAULT_NODES`
/// for a longer run.
@Suite("Fault suite", .serialized)
struct FaultSuiteTests {
    static let phaseSeconds = ProcessInfo.processInfo.environment["FAULT_PHASE_SECONDS"].flatMap(Double.init) ?? 1.5
    static let nodeCount = ProcessInfo.processInfo.environment["FAULT_NODES"].flatMap(Int.init) ?? 3
    static let seed = ProcessInfo.processInfo.environment["FAULT_SEED"].flatMap(UInt64.init) ?? 0xFA017

    /// One phase: what both proxies do, for how long.
    struct Phase {
        var name: String
        var impairment: ChaosProxy.Impairment
        var reset = false
    }

    static let phases: [Phase] = [
        Phase(name: "loss 10%, duplicate 5%, reorder 10%", impairment: .init(loss: 0.1, duplicate: 0.05, reorder: 0.1)),
        Phase(name: "delay 40 ms + jitter 40 ms", impairment: .init(delay: .milliseconds(40), jitter: .milliseconds(40))),
        Phase(name: "bandwidth 64 KB/s", impairment: .init(bandwidth: 64_000)),
        Phase(name: "connection reset", impairment: .none, reset: true),
        Phase(name: "blackhole partition", impairment: .init(blackhole: true)),
        Phase(name: "loss 30% with delay 20 ms", impairment: .init(loss: 0.3, delay: .milliseconds(20))),
        Phase(name: "connection reset under loss", impairment: .init(loss: 0.1), reset: true),
    ]

    /// What the applications received, and whether the senders go on.
    final class Recorder: Sendable {
        /// Per node: the events lane's sequence numbers, and each state key's values in arrival order.
        let atEdges = Mutex<[String: (events: [Int], state: [String: [Int]])]>([:])
        /// Per node: the sequence numbers the cloud received.
        let atCloud = Mutex<[String: [Int]]>([:])
        let sending = Atomic<Bool>(true)
    }

    @Test("every reliable message arrives exactly once and in order, and state converges, through loss, delay, caps, partitions and resets")
    func faults() async throws {
        let fixture = try await HubFixture { configuration in
            configuration.channel.keepaliveInterval = .milliseconds(500)
            configuration.channel.deadPeerTimeout = .seconds(2)
        }
        let udp = try await ChaosProxy.start(.udp, to: fixture.ports.quic, seed: Self.seed)
        let tcp = try await ChaosProxy.start(.tcp, to: fixture.ports.webSocket, seed: Self.seed + 1)
        let nodes = (0..<Self.nodeCount).map { "fault-\($0)" }
        var started: [String: (hub: EdgeHub, meta: BusEndpoint)] = [:]
        for (index, node) in nodes.enumerated() {
            var configuration = fixture.edgeConfiguration(node, token: try fixture.hub.makeToken())
            configuration.preferQUIC = index % 2 == 0  // every other node on WebSocket
            configuration.quicPort = udp.port
            configuration.webSocketPort = tcp.port
            configuration.quicHandshakeTimeout = .seconds(1)
            configuration.initialBackoff = .milliseconds(20)
            configuration.maxBackoff = .milliseconds(300)
            var channel = configuration.channel
            channel.keepaliveInterval = .milliseconds(500)
            channel.deadPeerTimeout = .seconds(2)
            configuration.channel = channel
            let bus = MessageBus()
            let meta = bus.register(module: "metaManager", group: "meta")
            let edge = try EdgeHub(configuration: configuration, bus: bus, group: testGroup)
            edge.start()
            started[node] = (edge, meta)
        }
        let edges = started
        for node in nodes { #expect(await eventually(timeout: .seconds(20)) { edges[node]?.hub.backend != nil }) }

        let recorder = Recorder()
        var readers: [Task<Void, Never>] = []
        for node in nodes {
            let meta = edges[node]!.meta
            readers.append(Task {
                for await message in meta.messages(on: .events) {
                    let value = Int(String(buffer: message.content)) ?? -1
                    recorder.atEdges.withLock { $0[node, default: ([], [:])].events.append(value) }
                }
            })
            readers.append(Task {
                for await message in meta.messages(on: .state) {
                    let value = Int(String(buffer: message.content)) ?? -1
                    recorder.atEdges.withLock { $0[node, default: ([], [:])].state[message.router.resource, default: []].append(value) }
                }
            })
            for index in 0..<10 { fixture.hub.grant(ObjectReference(kind: "pod", namespace: "default", name: "p\(index)"), to: node) }
        }
        readers.append(Task {
            for await incoming in fixture.hub.incoming {
                let value = Int(String(buffer: incoming.message.content)) ?? -1
                recorder.atCloud.withLock { $0[incoming.node, default: []].append(value) }
            }
        })

        // Traffic, paced, until the faults are over: per node, sequenced events each way and
        // ten state keys updated in turn.
        let senders = nodes.map { node in
            Task { () -> (toEdge: Int, toCloud: Int, latest: [String: Int]) in
                let meta = edges[node]!.meta
                var sequence = 0
                var latest: [String: Int] = [:]
                while recorder.sending.load(ordering: .relaxed) {
                    try? await fixture.hub.send(hubMessage("update", "default/event/e", content: "\(sequence)"), to: node, on: .events, delivery: .reliable)
                    let key = "default/configmap/k\(sequence % 10)"
                    try? await fixture.hub.send(hubMessage("update", key, content: "\(sequence)"), to: node, on: .state, delivery: .state(key: key))
                    latest[key] = sequence
                    try? await meta.send(
                        Message(router: MessageRouter(source: "metaManager", destination: EdgeHub.moduleName, group: "resource", operation: "update",
                                                      resource: "default/podstatus/p\(sequence % 10)"), content: ByteBuffer(string: "\(sequence)")),
                        on: .events, delivery: .reliable)
                    sequence += 1
                    try? await Task.sleep(for: .milliseconds(5))
                }
                return (sequence, sequence, latest)
            }
        }

        // The faults, phase by phase.
        var injected: [String: Int] = [:]
        for phase in Self.phases {
            if phase.reset {
                await udp.resetConnections()
                await tcp.resetConnections()
            }
            await udp.set(phase.impairment)
            await tcp.set(phase.impairment)
            injected[phase.name, default: 0] += 1
            let seconds = phase.impairment.blackhole ? max(Self.phaseSeconds, 3) : Self.phaseSeconds  // past dead-peer detection
            try await Task.sleep(for: .milliseconds(Int(seconds * 1000)))
        }
        await udp.set(.none)
        await tcp.set(.none)
        recorder.sending.store(false, ordering: .relaxed)
        var sent: [String: (toEdge: Int, toCloud: Int, latest: [String: Int])] = [:]
        for (node, sender) in zip(nodes, senders) { sent[node] = await sender.value }
        let healed = ContinuousClock.now

        // Converged: everything sent has arrived.
        let converged = await eventually(timeout: .seconds(60)) {
            let edgeView = recorder.atEdges.withLock { $0 }
            let cloudView = recorder.atCloud.withLock { $0 }
            return nodes.allSatisfy { node in
                guard let sent = sent[node] else { return false }
                return edgeView[node]?.events.count ?? 0 >= sent.toEdge && cloudView[node]?.count ?? 0 >= sent.toCloud
                    && sent.latest.allSatisfy { edgeView[node]?.state[$0.key]?.last == $0.value }
            }
        }
        let convergence = ContinuousClock.now - healed
        try await Task.sleep(for: .milliseconds(500))  // anything arriving twice would come now
        let edgeView = recorder.atEdges.withLock { $0 }
        let cloudView = recorder.atCloud.withLock { $0 }
        var lost = 0
        var duplicates = 0
        var outOfOrder = 0
        for node in nodes {
            let sent = sent[node]!
            for (received, count) in [(edgeView[node]?.events ?? [], sent.toEdge), (cloudView[node] ?? [], sent.toCloud)] {
                lost += Set(0..<count).subtracting(received).count
                duplicates += received.count - Set(received).count
                outOfOrder += zip(received, received.dropFirst()).filter { $0 >= $1 }.count
            }
            // State: each key's values only move forward, and end at the latest.
            for (key, values) in edgeView[node]?.state ?? [:] {
                outOfOrder += zip(values, values.dropFirst()).filter { $0 >= $1 }.count
                if values.last != sent.latest[key] { lost += 1 }
            }
        }
        let total = sent.values.map { $0.toEdge + $0.toCloud }.reduce(0, +)
        let stateSent = sent.values.map(\.toEdge).reduce(0, +)
        let (u, t) = (udp.statistics, tcp.statistics)
        print("""
            fault suite: \(nodes.count) nodes, \(total) reliable messages and \(stateSent) state updates sent over \(Self.phases.count) phases \
            (\(injected.keys.sorted().joined(separator: "; "))); UDP proxy dropped \(u.dropped), duplicated \(u.duplicated), reordered \(u.reordered), \
            remapped \(u.resets); TCP proxy held \(t.held) chunks, reset \(t.resets) connections; lost \(lost), duplicates \(duplicates), \
            out of order \(outOfOrder); converged \(convergence) after the last fault
            """)
        #expect(converged)
        #expect(lost == 0)
        #expect(duplicates == 0)
        #expect(outOfOrder == 0)
        #expect(u.dropped > 0 && t.resets > 0)

        for reader in readers { reader.cancel() }
        for (edge, _) in edges.values { await edge.stop() }
        await udp.stop()
        await tcp.stop()
        await fixture.stop()
    }
}
