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
        /// Per node: how many of each kind were sent (accepted by the channel), and each state key's latest value.
        let sent = Mutex<[String: (count: Int, latest: [String: Int])]>([:])
    }

    /// Whether `send` went through.
    static func accepted(_ send: () async throws -> Void) async -> Bool {
        do {
            try await send()
            return true
        } catch {
            return false
        }
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
            for index in 0..<10 { fixture.hub.grant(EdgeObjectKey(kind: "pod", namespace: "default", name: "p\(index)"), to: node) }
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
            Task {
                let meta = edges[node]!.meta
                var sequence = 0
                while recorder.sending.load(ordering: .relaxed) {
                    // The channel accepts every send (reliable sends wait for room); one it
                    // refused would fail the test rather than count as sent.
                    let key = "default/configmap/k\(sequence % 10)"
                    let toEdge = await Self.accepted {
                        try await fixture.hub.send(hubMessage("update", "default/event/e", content: "\(sequence)"), to: node, on: .events, delivery: .reliable)
                    }
                    let stateToEdge = await Self.accepted {
                        try await fixture.hub.send(hubMessage("update", key, content: "\(sequence)"), to: node, on: .state, delivery: .state(key: key))
                    }
                    let toCloud = await Self.accepted {
                        try await meta.send(
                            Message(router: MessageRouter(source: "metaManager", destination: EdgeHub.moduleName, group: "resource", operation: "update",
                                                          resource: "default/podstatus/p\(sequence % 10)"), content: ByteBuffer(string: "\(sequence)")),
                            on: .events, delivery: .reliable)
                    }
                    let accepted = toEdge && stateToEdge && toCloud
                    #expect(accepted, "a send was refused")
                    recorder.sent.withLock { $0[node] = (sequence + 1, $0[node]?.latest.merging([key: sequence]) { $1 } ?? [key: sequence]) }
                    sequence += 1
                    try? await Task.sleep(for: .milliseconds(5))
                }
            }
        }

        /// Whether everything sent so far (as of `snapshot`) has arrived.
        func arrived(_ snapshot: [String: (count: Int, latest: [String: Int])]) -> Bool {
            let edgeView = recorder.atEdges.withLock { $0 }
            let cloudView = recorder.atCloud.withLock { $0 }
            return snapshot.allSatisfy { node, sent in
                edgeView[node]?.events.count ?? 0 >= sent.count && cloudView[node]?.count ?? 0 >= sent.count
                    && sent.latest.allSatisfy { key, value in (edgeView[node]?.state[key]?.last ?? -1) >= value }
            }
        }

        // The faults, phase by phase; after each, the links heal and the time until everything
        // sent so far has arrived is the phase's convergence time.
        var convergence: [(phase: String, time: Duration)] = []
        for phase in Self.phases {
            if phase.reset {
                await udp.resetConnections()
                await tcp.resetConnections()
            }
            await udp.set(phase.impairment)
            await tcp.set(phase.impairment)
            let seconds = phase.impairment.blackhole ? max(Self.phaseSeconds, 3) : Self.phaseSeconds  // past dead-peer detection
            try await Task.sleep(for: .milliseconds(Int(seconds * 1000)))
            await udp.set(.none)
            await tcp.set(.none)
            let healed = ContinuousClock.now
            let snapshot = recorder.sent.withLock { $0 }
            #expect(await eventually(timeout: .seconds(60)) { arrived(snapshot) }, "after \(phase.name)")
            convergence.append((phase.name, ContinuousClock.now - healed))
        }
        recorder.sending.store(false, ordering: .relaxed)
        for sender in senders { await sender.value }
        let sent = recorder.sent.withLock { $0 }

        let converged = await eventually(timeout: .seconds(60)) { arrived(sent) }
        try await Task.sleep(for: .milliseconds(500))  // anything arriving twice would come now
        let edgeView = recorder.atEdges.withLock { $0 }
        let cloudView = recorder.atCloud.withLock { $0 }
        var lost = 0
        var duplicates = 0
        var outOfOrder = 0
        for node in nodes {
            let sent = sent[node] ?? (0, [:])
            for (received, count) in [(edgeView[node]?.events ?? [], sent.count), (cloudView[node] ?? [], sent.count)] {
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
        let total = sent.values.map { 2 * $0.count }.reduce(0, +)
        let stateSent = sent.values.map(\.count).reduce(0, +)
        let (u, t) = (udp.statistics, tcp.statistics)
        print("""
            fault suite: \(nodes.count) nodes, \(total) reliable messages and \(stateSent) state updates sent over \(Self.phases.count) phases; \
            converged after each: \(convergence.map { "\($0.phase) \($0.time)" }.joined(separator: "; ")); UDP proxy dropped \(u.dropped), duplicated \(u.duplicated), reordered \(u.reordered), \
            remapped \(u.resets); TCP proxy held \(t.held) chunks, reset \(t.resets) connections; lost \(lost), duplicates \(duplicates), \
            out of order \(outOfOrder)
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
