// channel-bench: end-to-end channel throughput on 127.0.0.1 over WebSocket+TLS (default) or QUIC
// (`--backend quic`), with baselines measured in the same run: iperf3 TCP loopback for WebSocket;
// iperf3 UDP and ngtcp2's own example pair (gtlsserver serving a 500 MB file to gtlsclient) for
// QUIC. `--demo` instead keeps a cloud and an edge exchanging messages until interrupted (what
// `make run` starts).
import BenchSupport
import Foundation
import Logging
import NIOCore
import NIOPosix
import Transport

struct Scenario {
    var name: String
    var lane: Lane
    var delivery: Delivery
    var payload: Int
    var count: Int
    var outbox: Bool
}


func makeCertificates() throws -> String {
    let directory = NSTemporaryDirectory() + "channel-bench-" + UUID().uuidString
    let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../scripts/dev-certs.sh").standardized.path
    let (status, _) = shell("'\(script)' '\(directory)'")
    guard status == 0 else { throw BenchError("scripts/dev-certs.sh failed") }
    return directory
}

/// Writes a line to standard output at once (no buffering, so a long run shows progress).
func say(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}


/// The value of `--name=VALUE` on the command line, if given.
func option(_ name: String) -> Int? {
    CommandLine.arguments.first { $0.hasPrefix("--\(name)=") }.flatMap { Int($0.dropFirst(name.count + 3)) }
}

/// The channel configuration, with tuning overrides from the command line (for experiments):
/// `--window=BYTES --queue=BYTES --max-flush=BYTES --coalesce-us=MICROSECONDS`.
func configuration(local: String, peer: String) -> ChannelConfiguration {
    var configuration = ChannelConfiguration(localNodeID: local, peerNodeID: peer)
    if let window = option("window") { configuration.initialWindow = window }
    if let queue = option("queue") { configuration.maxQueuedBytesPerLane = queue }
    if let flush = option("max-flush") { configuration.maxBytesPerFlush = flush }
    if let delay = option("coalesce-us") { configuration.flushCoalescingDelay = .microseconds(delay) }
    return configuration
}

/// Whether `--backend quic` was given.
let useQUIC: Bool = {
    let arguments = CommandLine.arguments
    guard let index = arguments.firstIndex(of: "--backend"), index + 1 < arguments.count else { return false }
    return arguments[index + 1] == "quic"
}()

/// Stops a server of either backend.
struct RunningServer {
    let stop: @Sendable () async -> Void
}

/// A cloud channel behind a server of the chosen backend and an edge channel connected to it.
func connectPair(directory: String, outbox: Bool, tag: String) async throws -> (edge: MessageChannel, cloud: MessageChannel, server: RunningServer) {
    let cloud = try MessageChannel(
        configuration: configuration(local: "cloud", peer: "edge-1"),
        outbox: outbox ? try Outbox(configuration: .init(path: "\(directory)/cloud-\(tag).sqlite")) : nil)
    let edge = try MessageChannel(
        configuration: configuration(local: "edge-1", peer: "cloud"),
        outbox: outbox ? try Outbox(configuration: .init(path: "\(directory)/edge-\(tag).sqlite")) : nil)
    let serverTLS = TLSFiles(certificateChain: "\(directory)/server.pem", privateKey: "\(directory)/server.key", trustRoots: "\(directory)/ca.pem")
    let clientTLS = TLSFiles(certificateChain: "\(directory)/client.pem", privateKey: "\(directory)/client.key", trustRoots: "\(directory)/ca.pem")
    let running: RunningServer
    if useQUIC {
        // `--no-gso` turns UDP segmentation offload off on both sides (to measure what it adds).
        let offload = !CommandLine.arguments.contains("--no-gso")
        var serverConfiguration = QUICServer.Configuration(port: 0, tls: serverTLS)
        serverConfiguration.segmentationOffload = offload
        let server = QUICServer(configuration: serverConfiguration) { request in .accepting(request.hello.nodeID == "edge-1" ? cloud : nil, for: request) }
        let port = try await server.start()
        var connectorConfiguration = QUICConnector.Configuration(port: port, tls: clientTLS)
        connectorConfiguration.segmentationOffload = offload
        let connection = try await QUICConnector(configuration: connectorConfiguration).connect(edge)
        running = RunningServer {
            if CommandLine.arguments.contains("--verbose"), let statistics = try? await connection.statistics() {
                say("  edge QUIC connection: \(statistics)")
            }
            await server.stop()
        }
    } else {
        let server = WebSocketServer(configuration: .init(port: 0, tls: serverTLS)) { request in .accepting(request.hello.nodeID == "edge-1" ? cloud : nil, for: request) }
        let port = try await server.start()
        try await WebSocketConnector(configuration: .init(port: port, tls: clientTLS)).connect(edge)
        running = RunningServer { await server.stop() }
    }
    try await edge.waitUntilConnected()
    try await cloud.waitUntilConnected()
    return (edge, cloud, running)
}

func run(_ scenario: Scenario, directory: String) async throws -> (messagesPerSecond: Double, bytesPerSecond: Double) {
    let (edge, cloud, server) = try await connectPair(directory: directory, outbox: scenario.outbox, tag: scenario.name)
    var payload = ByteBuffer()
    payload.writeRepeatingByte(0x61, count: scenario.payload)
    let message = Message(router: MessageRouter(source: "bench", destination: "cloud", group: "user", operation: "publish", resource: "node/edge-1/bench"), content: payload)
    let count = scenario.count
    let start = ContinuousClock.now
    let end = try await withThrowingTaskGroup(of: ContinuousClock.Instant?.self) { group in
        group.addTask {
            var received = 0
            for await _ in cloud.messages(on: scenario.lane) {
                received += 1
                if received == count { break }
            }
            return ContinuousClock.now
        }
        for _ in 0..<count {
            // The fast path never suspends; a full lane or outbox falls back to the awaiting send.
            if try edge.trySend(message, on: scenario.lane, delivery: scenario.delivery) == .wouldBlock {
                try await edge.send(message, on: scenario.lane, delivery: scenario.delivery)
            }
        }
        return try await group.next()!!
    }
    let seconds = Double((end - start).components.attoseconds) / 1e18 + Double((end - start).components.seconds)
    await edge.close()
    await cloud.close()
    await server.stop()
    return (Double(count) / seconds, Double(count * scenario.payload) / seconds)
}


/// ngtcp2's example pair from Debian: gtlsserver serves a sparse `megabytes` MB file to gtlsclient
/// over HTTP/3 on loopback. Bytes per second of the transfer (wall time of the client).
func ngtcp2ReferencePair(directory: String, megabytes: Int) -> Double? {
    let port = Int.random(in: 30_000..<40_000)
    let htdocs = "\(directory)/htdocs"
    let command = """
        mkdir -p '\(htdocs)' && truncate -s \(megabytes)M '\(htdocs)/file' || exit 1
        gtlsserver -q -d '\(htdocs)' 127.0.0.1 \(port) '\(directory)/server.key' '\(directory)/server.pem' >/dev/null 2>&1 &
        # (kill -9: a child of this process may inherit a blocked SIGTERM)
        server=$!; sleep 0.5
        start=$(date +%s.%N)
        gtlsclient -q --exit-on-all-streams-close --no-quic-dump --no-http-dump 127.0.0.1 \(port) https://127.0.0.1:\(port)/file >/dev/null 2>&1
        status=$?; end=$(date +%s.%N); kill -9 $server; rm -f '\(htdocs)/file'
        [ $status = 0 ] && echo "$start $end"
        """
    let (status, output) = shell(command)
    let times = output.split(whereSeparator: \.isWhitespace).compactMap { Double($0) }
    guard status == 0, times.count == 2, times[1] > times[0] else { return nil }
    return Double(megabytes) * 1_048_576 / (times[1] - times[0])
}

func demo(directory: String) async throws {
    let (edge, cloud, _) = try await connectPair(directory: directory, outbox: true, tag: "demo")
    say("cloud and edge-1 connected over WebSocket+TLS on 127.0.0.1 (certificates in \(directory)); Ctrl-C stops")
    try await withThrowingDiscardingTaskGroup { group in
        group.addTask {
            for await message in cloud.messages(on: .events) {
                say("cloud received \(message.router.operation) \(message.router.resource): \(String(buffer: message.content))")
            }
        }
        var tick = 0
        while true {
            tick += 1
            let message = Message(
                router: MessageRouter(source: "edge-1", destination: "cloud", group: "user", operation: "publish", resource: "node/edge-1/heartbeat"),
                content: ByteBuffer(string: "tick \(tick)"))
            try await edge.send(message, on: .events, delivery: .reliable)
            try await Task.sleep(for: .seconds(1))
        }
    }
}

bootstrapBenchLogging(level: .warning)
let arguments = CommandLine.arguments.dropFirst()
/// The value following `name` on the command line, if any.
func argument(after name: String) -> String? {
    arguments.firstIndex(of: name).flatMap { arguments.index(after: $0) < arguments.endIndex ? arguments[arguments.index(after: $0)] : nil }
}
let directory = try argument(after: "--certificates") ?? makeCertificates()
if arguments.contains("--demo") {
    try await demo(directory: directory)
} else if let served = argument(after: "--serve") {
    try await serveUntilStdinCloses(Backend(rawValue: served) ?? .quic, directory: directory)
} else if arguments.contains("--connections") {
    try await connectionBenchmarks(directory: directory, quick: arguments.contains("--quick"))
} else {
    let scale = arguments.contains("--quick") ? 10 : 1
    let scenarios = [
        Scenario(name: "best-effort 256 B", lane: .events, delivery: .bestEffort, payload: 256, count: 2_000_000 / scale, outbox: false),
        Scenario(name: "reliable 256 B (SQLite outbox)", lane: .state, delivery: .reliable, payload: 256, count: 500_000 / scale, outbox: true),
        Scenario(name: "bulk 1 MiB best-effort", lane: .bulk, delivery: .bestEffort, payload: 1 << 20, count: 2000 / scale, outbox: false),
    ]
    // `--only PREFIX` runs the scenarios whose name starts with PREFIX (for profiling one path).
    let only = argument(after: "--only")
    var results: [[String: Any]] = []
    func column(_ text: String) -> String { text.padding(toLength: 34, withPad: " ", startingAt: 0) }
    say(column("scenario") + "   messages/s       MB/s")
    for scenario in scenarios where only.map({ scenario.name.hasPrefix($0) }) ?? true {
        let (rate, bytes) = try await run(scenario, directory: directory)
        say(column(scenario.name) + String(format: " %12.0f %10.1f", rate, bytes / 1e6))
        results.append(["scenario": scenario.name, "messages_per_second": rate, "bytes_per_second": bytes])
    }
    let bulkRate = results.first(where: { ($0["scenario"] as? String)?.hasPrefix("bulk") == true })?["bytes_per_second"] as? Double
    if only != nil {
        // A partial run has no bulk figure to compare.
    } else if useQUIC {
        if let udp = iperf3Baseline(udpPayload: 1400) {
            say(column("iperf3 UDP loopback, 1400 B") + String(format: " %12@ %10.1f", "-" as NSString, udp / 1e6))
            results.append(["scenario": "iperf3 UDP loopback", "bytes_per_second": udp])
            if let bulkRate { say(String(format: "bulk / iperf3 UDP: %.0f %%", bulkRate / udp * 100)) }
        } else {
            say("iperf3 UDP baseline unavailable (is iperf3 installed?)")
        }
        if let reference = ngtcp2ReferencePair(directory: directory, megabytes: 500 / scale) {
            say(column("ngtcp2 gtlsserver→gtlsclient") + String(format: " %12@ %10.1f", "-" as NSString, reference / 1e6))
            results.append(["scenario": "ngtcp2 reference pair", "bytes_per_second": reference])
            if let bulkRate { say(String(format: "bulk / ngtcp2 reference pair: %.2f×", bulkRate / reference)) }
        } else {
            say("ngtcp2 reference pair unavailable (are ngtcp2-server and ngtcp2-client installed?)")
        }
    } else if let baseline = iperf3Baseline() {
        say(column("iperf3 TCP loopback (same run)") + String(format: " %12@ %10.1f", "-" as NSString, baseline / 1e6))
        results.append(["scenario": "iperf3 TCP loopback", "bytes_per_second": baseline])
        if let bulkRate { say(String(format: "bulk / iperf3: %.0f %%", bulkRate / baseline * 100)) }
    } else {
        say("iperf3 baseline unavailable (is iperf3 installed?)")
    }
    if let json = try? JSONSerialization.data(withJSONObject: results, options: [.sortedKeys]) {
        say(String(decoding: json, as: UTF8.self))
    }
}
