import ArgumentParser
import BenchSupport
import CloudHub
import Foundation
import NIOCore
import Synchronization
import Transport

/// The macro benchmark of the hubs: a real CloudHub and N edges on loopback, with peers
/// measured in the same run for ratios.
@main
struct TransportBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "transport-bench",
        abstract: "Measure CloudHub and its edges on loopback: throughput, latency, CPU, memory, many connections.",
        discussion: """
            Runs a real CloudHub (node CA, mutual TLS, access checks) on 127.0.0.1 and connects edges to it, in this \
            process or in child processes (--processes), over QUIC or WebSocket. Edges are bare channels: the figure is \
            the transport through CloudHub, without EdgeHub's in-process bus hop.

            Throughput mode (default): sends --messages messages of --payload bytes down (cloud to edges) or up (edges \
            to cloud) and reports messages/s, MB/s, latency percentiles (HdrHistogram, from a timestamp in each \
            message), CPU and resident memory.

            Connections mode (--connections N): connects N idle edges and reports connect time, the cloud's resident \
            memory per idle connection, the aggregate rate to all edges, and latency at 50 % of that rate.

            --peers adds, in the same run: iperf3 TCP and UDP on loopback (the physical limit) and nats-server \
            publish to subscribe with the same payload (a broker for small messages), with ratios.

            Examples:
              swift run -c release transport-bench --peers
              swift run -c release transport-bench --backend websocket --edges 10 --lanes 3 --delivery best-effort
              swift run -c release transport-bench --connections 10000 --processes 4 --json result.json
            """)

    @Option(help: "Transport: quic or websocket.")
    var backend: BackendChoice = .quic
    @Option(help: "Edges in throughput mode.")
    var edges: Int = 1
    @Option(help: "Messages to send (throughput mode and the aggregate phase of connections mode).")
    var messages: Int = 200_000
    @Option(help: "Bytes per message (at least 8: the timestamp).")
    var payload: Int = 256
    @Option(help: "Lanes to spread messages over (1-4: state, events, request, bulk).")
    var lanes: Int = 1
    @Option(help: "Delivery class: best-effort, reliable or state.")
    var delivery: DeliveryChoice = .reliable
    @Option(help: "down: cloud to edges; up: edges to cloud.")
    var direction: Direction = .down
    @Option(name: .customLong("fan-out"), help: "Edges each message goes to (down): deliveries = messages × fan-out.")
    var fanOut: Int = 1
    @Option(help: "Connections mode: connect this many idle edges (0: throughput mode).")
    var connections: Int = 0
    @Option(help: "Run edges in this many child processes (0: in this process).")
    var processes: Int = 0
    @Option(name: .customLong("latency-seconds"), help: "Connections mode: how long the paced load phase runs.")
    var latencySeconds: Int = 5
    @Option(name: .customLong("load-fraction"), help: "Connections mode: the paced phase's rate as a fraction of the measured peak.")
    var loadFraction: Double = 0.5
    @Flag(help: "Also measure iperf3 (TCP, UDP) and nats-server in this run.")
    var peers = false
    @Option(help: "Also write the results as JSON to this file.")
    var json: String?

    // The child-process side (not for direct use).
    @Flag(name: .customLong("edge-process"), help: .hidden) var edgeProcess = false
    @Option(name: .customLong("cloud-port"), help: .hidden) var cloudPort: Int = 0
    @Option(help: .hidden) var directory: String = ""
    @Option(name: .customLong("trust-roots"), help: .hidden) var trustRoots: String = ""
    @Option(help: .hidden) var first: Int = 0
    @Option(help: .hidden) var count: Int = 0

    enum BackendChoice: String, ExpressibleByArgument {
        case quic, websocket
        var backend: TransportBackend { self == .quic ? .quic : .webSocket }
    }

    enum DeliveryChoice: String, ExpressibleByArgument {
        case bestEffort = "best-effort", reliable, state

        /// The class of message `index` (`state` keys are distinct, so nothing coalesces).
        func delivery(_ index: Int) -> Delivery {
            switch self {
            case .bestEffort: .bestEffort
            case .reliable: .reliable
            case .state: .state(key: "bench-\(index)")
            }
        }
    }

    enum Direction: String, ExpressibleByArgument { case down, up }

    func validate() throws {
        guard payload >= 8 else { throw ValidationError("--payload must be at least 8 (the timestamp)") }
        guard (1...4).contains(lanes) else { throw ValidationError("--lanes must be 1 to 4") }
        guard loadFraction > 0, loadFraction <= 1 else { throw ValidationError("--load-fraction must be in (0, 1]") }
        guard edges >= 1, fanOut >= 1, fanOut <= max(edges, connections) else { throw ValidationError("--fan-out must be between 1 and the number of edges") }
        guard !(processes > 0 && direction == .up) else { throw ValidationError("--direction up runs edges in this process; drop --processes") }
    }

    var laneList: [Lane] { Array([Lane.state, .events, .request, .bulk].prefix(lanes)) }

    /// Every edge channel: windows large enough that credit does not limit a loopback run.
    var channelTemplate: ChannelConfiguration {
        ChannelConfiguration(localNodeID: "", peerNodeID: "", maxOutboxMessages: 1_000_000, maxOutboxBytes: 1 << 30)
    }

    func deliveryClass(_ index: Int) -> Delivery { delivery.delivery(index) }

    mutating func run() async throws {
        if edgeProcess {
            await EdgeProcesses.runChild(
                backend: backend.backend, port: cloudPort, directory: directory, trustRoots: trustRoots, range: first..<(first + count),
                lanes: laneList, channel: channelTemplate)
            return
        }
        var rows: [ResultRow] = []
        let directory = NSTemporaryDirectory() + "transport-bench-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: directory) }
        if connections > 0 {
            rows += try await runConnections(directory: directory)
        } else {
            rows.append(try await runThroughput(directory: directory))
        }
        if peers { rows += runPeers(reference: rows.first) }
        print()
        printTable(rows)
        if let json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(rows).write(to: URL(fileURLWithPath: json))
            print("\nJSON written to \(json)")
        }
    }

    // MARK: throughput

    func runThroughput(directory: String) async throws -> ResultRow {
        let cloud = try await BenchCloud.start(directory: directory, nodes: edges, channel: channelTemplate)
        defer { Task { await cloud.hub.stop() } }
        let port = backend == .quic ? cloud.ports.quic : cloud.ports.webSocket
        log("connecting \(edges) edge(s) over \(backend.rawValue)")
        var credentials: [Int: TLSFiles] = [:]
        for index in 0..<edges { credentials[index] = try cloud.issueCredentials(for: benchNodeName(index)) }
        let files = credentials
        let edgeSet = try await EdgeSet.connect(
            indices: 0..<edges, backend: backend.backend, port: port, credentials: { files[$0]! }, channel: channelTemplate)
        let deliveries = direction == .down ? messages * fanOut : messages
        let cpuBefore = cpuSeconds()
        let start = monotonicNanoseconds()
        let progress = ProgressLine()
        let received: @Sendable () -> Int
        let latency: @Sendable () -> LatencyHistogram
        switch direction {
        case .down:
            edgeSet.startConsuming(lanes: laneList)
            received = { edgeSet.received.load(ordering: .relaxed) }
            latency = { edgeSet.latency.snapshot }
            progress.start("down") { "\(received()) / \(deliveries) delivered" }
            try await sendDown(hub: cloud.hub, nodes: edgeSet.names)
        case .up:
            let reader = UpReader(hub: cloud.hub, expected: deliveries)
            received = { reader.received.load(ordering: .relaxed) }
            latency = { reader.latency.snapshot }
            progress.start("up") { "\(received()) / \(deliveries) received" }
            try await sendUp(edges: edgeSet)
        }
        await waitForDeliveries(expected: deliveries, received: received)
        progress.stop()
        let seconds = Double(monotonicNanoseconds() - start) / 1e9
        let cpu = cpuSeconds() - cpuBefore
        let histogram = latency()
        let got = received()
        await edgeSet.close()
        var note = "\(edges) edge(s), \(lanes) lane(s), \(delivery.rawValue), \(payload) B"
        if fanOut > 1 { note += ", fan-out \(fanOut)" }
        if got < deliveries { note += ", \(deliveries - got) dropped" }
        return ResultRow(
            scenario: "\(backend.rawValue) \(direction.rawValue) through CloudHub", messagesPerSecond: Double(got) / seconds,
            megabytesPerSecond: Double(got * payload) / seconds / 1e6, p50Microseconds: histogram.valueAtPercentile(50),
            p99Microseconds: histogram.valueAtPercentile(99), p999Microseconds: histogram.valueAtPercentile(99.9),
            cpuPercent: cpu / seconds * 100, residentMegabytes: Double(residentBytes()) / 1e6, note: note)
    }

    /// The cloud sends each edge its share, one task per edge, in batches per lane.
    func sendDown(hub: CloudHub, nodes: [String]) async throws {
        let perEdge = messages * fanOut / nodes.count
        let extra = messages * fanOut % nodes.count
        let lanes = laneList
        let payload = payload
        let mode = delivery
        // Per edge, four senders: a reliable batch returns once the outbox holds it, so one
        // sender would leave the link idle during every commit.
        let senders = 4
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (position, node) in nodes.enumerated() {
                let edgeShare = perEdge + (position < extra ? 1 : 0)
                for sender in 0..<senders {
                    let share = edgeShare / senders + (sender < edgeShare % senders ? 1 : 0)
                    group.addTask {
                    var sent = 0
                    while sent < share {
                        let lane = lanes[(sent / 64) % lanes.count]
                        let batch = (sent..<min(sent + 64, share)).map { _ in benchMessage(resource: "default/configmap/bench", payload: payload) }
                        if mode == .state {
                            for (offset, message) in batch.enumerated() {
                                try await hub.send(message, to: node, on: lane, delivery: mode.delivery(sent + offset))
                            }
                        } else {
                            try await hub.send(contentsOf: batch, to: node, on: lane, delivery: mode.delivery(sent))
                        }
                        sent += batch.count
                    }
                    }
                }
            }
            try await group.waitForAll()
        }
    }

    /// Each edge sends its share of status messages about itself.
    func sendUp(edges: EdgeSet) async throws {
        let perEdge = messages / edges.channels.count
        let lanes = laneList
        let payload = payload
        let delivery = deliveryClass(0)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (index, channel) in edges.channels.enumerated() {
                let node = edges.names[index]
                let edgeShare = perEdge + (index < messages % edges.channels.count ? 1 : 0)
                for sender in 0..<4 {
                let share = edgeShare / 4 + (sender < edgeShare % 4 ? 1 : 0)
                group.addTask {
                    var sent = 0
                    while sent < share {
                        let lane = lanes[(sent / 64) % lanes.count]
                        let batch = (sent..<min(sent + 64, share)).map { _ in benchMessage(resource: "default/nodestatus/\(node)", payload: payload) }
                        try await channel.send(contentsOf: batch, on: lane, delivery: delivery)
                        sent += batch.count
                    }
                }
                }
            }
            try await group.waitForAll()
        }
    }

    /// Waits until `expected` arrived, or (best effort) until nothing arrived for 2 s.
    func waitForDeliveries(expected: Int, received: () -> Int) async {
        var last = received()
        var idleSince = monotonicNanoseconds()
        while received() < expected {
            try? await Task.sleep(for: .milliseconds(5))
            let now = received()
            if now != last {
                last = now
                idleSince = monotonicNanoseconds()
            } else if monotonicNanoseconds() - idleSince > 2_000_000_000 {
                if delivery != .bestEffort { log("stalled at \(now) of \(expected)") }
                return
            }
        }
    }

    // MARK: connections

    func runConnections(directory: String) async throws -> [ResultRow] {
        let cloud = try await BenchCloud.start(directory: directory, nodes: connections, channel: channelTemplate)
        defer { Task { await cloud.hub.stop() } }
        let port = backend == .quic ? cloud.ports.quic : cloud.ports.webSocket
        log("issuing \(connections) node certificates")
        for index in 0..<connections { _ = try cloud.issueCredentials(for: benchNodeName(index)) }
        let baselineRSS = residentBytes()
        let cpuStart = cpuSeconds()
        let progress = ProgressLine()
        let start = monotonicNanoseconds()
        // The edges: in child processes, or here.
        var children: EdgeProcesses?
        var local: EdgeSet?
        if processes > 0 {
            let share = (connections + processes - 1) / processes
            let ranges = stride(from: 0, to: connections, by: share).map { $0..<min($0 + share, connections) }
            let trust = cloud.hub.tlsFiles!.trustRoots
            let backendName = backend.rawValue
            let laneCount = lanes
            children = try EdgeProcesses(
                executable: CommandLine.arguments[0],
                arguments: { _, range in
                    ["--edge-process", "--backend", backendName, "--cloud-port", "\(port)", "--directory", directory, "--trust-roots", trust,
                     "--first", "\(range.lowerBound)", "--count", "\(range.count)", "--lanes", "\(laneCount)"]
                }, ranges: ranges)
            let started = children!
            progress.start("connecting") { "\(started.connectedCount) / \(connections) edges" }
            while started.readyCount < ranges.count {
                if !started.failures.isEmpty { throw ValidationError("an edge process failed: \(started.failures)") }
                try await Task.sleep(for: .milliseconds(20))
            }
        } else {
            let counter = ManagedAtomicCounter()
            progress.start("connecting") { "\(counter.value) / \(connections) edges" }
            local = try await EdgeSet.connect(
                indices: 0..<connections, backend: backend.backend, port: port,
                credentials: { benchCredentials(directory: directory, index: $0, trustRoots: cloud.hub.tlsFiles!.trustRoots) },
                channel: channelTemplate, onConnected: { counter.set($0) })
            local!.startConsuming(lanes: laneList)
        }
        progress.stop()
        let connectSeconds = Double(monotonicNanoseconds() - start) / 1e9
        let connectCPU = cpuSeconds() - cpuStart
        log(String(format: "%d edges connected in %.1f s", connections, connectSeconds))
        try await Task.sleep(for: .seconds(2))
        let idleRSS = residentBytes()
        var rows = [ResultRow(
            scenario: "connect \(connections) edges (\(backend.rawValue))", messagesPerSecond: Double(connections) / connectSeconds,
            cpuPercent: connectCPU / connectSeconds * 100, residentMegabytes: Double(idleRSS) / 1e6,
            note: String(format: "%.1f s for all; %.1f KiB per idle connection%@", connectSeconds,
                         Double(idleRSS - baselineRSS) / Double(connections) / 1024, processes > 0 ? " (cloud process only)" : " (edges in this process too)"))]

        let nodes = (0..<connections).map(benchNodeName)
        let received: @Sendable () -> Int = { [children, local] in children?.receivedCount ?? local!.received.load(ordering: .relaxed) }
        // Peak: everything as fast as the hub takes it.
        children?.reset()
        local?.latency.reset()
        local?.received.store(0, ordering: .relaxed)
        try await Task.sleep(for: .milliseconds(300))
        let peakCPU = cpuSeconds()
        let peakStart = monotonicNanoseconds()
        progress.start("aggregate") { "\(received()) / \(messages) delivered" }
        _ = try await sendRoundRobin(hub: cloud.hub, nodes: nodes, count: messages)
        await waitForDeliveries(expected: messages, received: received)
        progress.stop()
        let peakSeconds = Double(monotonicNanoseconds() - peakStart) / 1e9
        let peak = Double(received()) / peakSeconds
        let peakHistogram = await children?.report().1 ?? local!.latency.snapshot
        rows.append(ResultRow(
            scenario: "aggregate to \(connections) edges", messagesPerSecond: peak, megabytesPerSecond: peak * Double(payload) / 1e6,
            p50Microseconds: peakHistogram.valueAtPercentile(50), p99Microseconds: peakHistogram.valueAtPercentile(99),
            p999Microseconds: peakHistogram.valueAtPercentile(99.9), cpuPercent: (cpuSeconds() - peakCPU) / peakSeconds * 100,
            residentMegabytes: Double(residentBytes()) / 1e6, note: "\(messages) × \(payload) B, \(delivery.rawValue), one message per node in turn, at saturation"))

        // Half that rate, paced, for the latency figure.
        children?.reset()
        local?.latency.reset()
        local?.received.store(0, ordering: .relaxed)
        try await Task.sleep(for: .milliseconds(300))
        let rate = peak * loadFraction
        let pacedCPU = cpuSeconds()
        let pacedStart = monotonicNanoseconds()
        progress.start("paced load") { "\(received()) delivered" }
        let sent = try await sendRoundRobin(hub: cloud.hub, nodes: nodes, count: 0, rate: rate, seconds: Double(latencySeconds))
        await waitForDeliveries(expected: sent, received: received)
        progress.stop()
        let pacedSeconds = Double(monotonicNanoseconds() - pacedStart) / 1e9
        let (pacedCount, pacedHistogram) = await children?.report() ?? (local!.received.load(ordering: .relaxed), local!.latency.snapshot)
        rows.append(ResultRow(
            scenario: String(format: "%.0f %% load to %d edges", loadFraction * 100, connections), messagesPerSecond: Double(pacedCount) / pacedSeconds,
            megabytesPerSecond: Double(pacedCount * payload) / pacedSeconds / 1e6, p50Microseconds: pacedHistogram.valueAtPercentile(50),
            p99Microseconds: pacedHistogram.valueAtPercentile(99), p999Microseconds: pacedHistogram.valueAtPercentile(99.9),
            cpuPercent: (cpuSeconds() - pacedCPU) / pacedSeconds * 100, residentMegabytes: Double(residentBytes()) / 1e6,
            note: String(format: "paced at %.0f msg/s for %d s", rate, latencySeconds)))
        children?.stop()
        await local?.close()
        return rows
    }

    /// Sends `count` messages (or, with `rate`, as many as `rate` per second allows for
    /// `seconds`) one at a time, each to the next node in turn: the cloud's pattern when many
    /// nodes each get their own updates. A node whose queue is full is waited for.
    func sendRoundRobin(hub: CloudHub, nodes: [String], count: Int, rate: Double? = nil, seconds: Double = 0) async throws -> Int {
        let start = monotonicNanoseconds()
        let lanes = laneList
        var sent = 0
        while true {
            let due: Int
            if let rate {
                let elapsed = Double(monotonicNanoseconds() - start) / 1e9
                if elapsed >= seconds { break }
                due = Int(elapsed * rate)
            } else {
                if sent >= count { break }
                due = min(count, sent + 1024)
            }
            while sent < due {
                let node = nodes[sent % nodes.count]
                let lane = lanes[(sent / nodes.count) % lanes.count]
                let message = benchMessage(resource: "default/configmap/bench", payload: payload)
                if case .wouldBlock = try hub.trySend(message, to: node, on: lane, delivery: deliveryClass(sent)) {
                    try await hub.send(message, to: node, on: lane, delivery: deliveryClass(sent))
                }
                sent += 1
            }
            if rate != nil {
                try await Task.sleep(for: .milliseconds(1))
            } else {
                await Task.yield()
            }
        }
        return sent
    }

    // MARK: peers

    func runPeers(reference: ResultRow?) -> [ResultRow] {
        var rows: [ResultRow] = []
        log("iperf3 TCP")
        if let tcp = iperf3Baseline() {
            rows.append(ResultRow(scenario: "iperf3 TCP loopback", megabytesPerSecond: tcp / 1e6, note: ratio(reference?.megabytesPerSecond, tcp / 1e6, "MB/s")))
        }
        log("iperf3 UDP")
        if let udp = iperf3Baseline(udpPayload: 1400) {
            rows.append(ResultRow(scenario: "iperf3 UDP loopback", megabytesPerSecond: udp / 1e6, note: ratio(reference?.megabytesPerSecond, udp / 1e6, "MB/s")))
        }
        log("nats-server pub→sub")
        if let (rate, histogram) = natsBaseline(messages: min(messages, 1_000_000), payload: payload) {
            rows.append(ResultRow(
                scenario: "nats-server pub→sub", messagesPerSecond: rate, megabytesPerSecond: rate * Double(payload) / 1e6,
                p50Microseconds: histogram.valueAtPercentile(50), p99Microseconds: histogram.valueAtPercentile(99),
                p999Microseconds: histogram.valueAtPercentile(99.9), note: ratio(reference?.messagesPerSecond, rate, "msg/s") + ", \(payload) B, no TLS, at most once"))
        } else {
            rows.append(ResultRow(scenario: "nats-server pub→sub", note: "unavailable (is nats-server installed?)"))
        }
        return rows
    }

    func ratio(_ ours: Double?, _ theirs: Double, _ unit: String) -> String {
        guard let ours, theirs > 0 else { return "" }
        return String(format: "ours / this = %.2f (%@)", ours / theirs, unit)
    }

    func log(_ text: String) {
        FileHandle.standardError.write(Data(("transport-bench: " + text + "\n").utf8))
    }
}

/// Reads `hub.incoming`, counting and timing.
final class UpReader: Sendable {
    let received = Atomic<Int>(0)
    let latency = LatencyRecorder()

    init(hub: CloudHub, expected: Int) {
        Task { [self] in
            for await message in hub.incoming {
                latency.record(latencyMicroseconds(of: message.message))
                if received.add(1, ordering: .relaxed).newValue == expected { break }
            }
        }
    }
}

/// A counter for the progress line.
final class ManagedAtomicCounter: Sendable {
    private let storage = Atomic<Int>(0)
    var value: Int { storage.load(ordering: .relaxed) }
    func set(_ value: Int) { storage.store(value, ordering: .relaxed) }
}
