// Connection benchmarks: how fast a server completes new connections (TLS handshake and the
// channel's HELLO exchange), over QUIC (full, and resumed with 0-RTT) beside WebSocket+TLS in the
// same run, and how much memory a server holds per idle connection (its channel included),
// measured on a server running in a child process.
import BenchSupport
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import Transport

/// The two backends, for the connection benchmarks.
enum Backend: String {
    case quic
    case webSocket = "websocket"
}

/// One cloud channel per node, made when the node's HELLO first arrives.
final class CloudChannels: Sendable {
    private let channels = NIOLockedValueBox<[String: MessageChannel]>([:])

    func channel(for node: String) -> MessageChannel? {
        channels.withLockedValue { channels in
            if let channel = channels[node] { return channel }
            guard let channel = try? MessageChannel(configuration: ChannelConfiguration(localNodeID: "cloud", peerNodeID: node)) else { return nil }
            channels[node] = channel
            return channel
        }
    }
}

/// A server of `backend` on a free loopback port, with a channel for every node that says HELLO.
func startServer(_ backend: Backend, directory: String) async throws -> (port: Int, stop: @Sendable () async -> Void) {
    let tls = TLSFiles(certificateChain: "\(directory)/server.pem", privateKey: "\(directory)/server.key", trustRoots: "\(directory)/ca.pem")
    let channels = CloudChannels()
    switch backend {
    case .quic:
        let server = QUICServer(configuration: .init(port: 0, tls: tls)) { request in .accepting(channels.channel(for: request.hello.nodeID), for: request) }
        return (try await server.start(), { await server.stop() })
    case .webSocket:
        let server = WebSocketServer(configuration: .init(port: 0, tls: tls)) { request in .accepting(channels.channel(for: request.hello.nodeID), for: request) }
        return (try await server.start(), { await server.stop() })
    }
}

/// An edge of the benchmarks: its channel and the connector it reuses for every connection (so
/// a QUIC edge resumes its session when `resume` is on).
final class BenchEdge: Sendable {
    let channel: MessageChannel
    private let quic: QUICConnector?
    private let webSocket: WebSocketConnector?
    private let connection = NIOLockedValueBox<(@Sendable () async -> Void)?>(nil)

    init(node: String, backend: Backend, port: Int, directory: String, resume: Bool) throws {
        channel = try MessageChannel(configuration: ChannelConfiguration(localNodeID: node, peerNodeID: "cloud"))
        let tls = TLSFiles(certificateChain: "\(directory)/client.pem", privateKey: "\(directory)/client.key", trustRoots: "\(directory)/ca.pem")
        switch backend {
        case .quic:
            var configuration = QUICConnector.Configuration(port: port, tls: tls)
            configuration.earlyData = resume
            quic = try QUICConnector(configuration: configuration)
            webSocket = nil
        case .webSocket:
            quic = nil
            webSocket = try WebSocketConnector(configuration: .init(port: port, tls: tls))
        }
    }

    /// Connects and waits for the server's HELLO.
    func connect() async throws {
        if let quic {
            let open = try await quic.connect(channel)
            connection.withLockedValue { $0 = { await open.drop() } }
            do {
                try await channel.waitUntilConnected(timeout: .seconds(30))
            } catch {
                let statistics = (try? await open.statistics()).map { "\($0)" } ?? "unavailable"
                throw BenchError("\(channel.configuration.localNodeID): QUIC handshake completed but no HELLO exchange (\(error)); connection: \(statistics)")
            }
            return
        } else if let webSocket {
            let open = try await webSocket.connect(channel)
            connection.withLockedValue { $0 = { await open.drop() } }
        }
        try await channel.waitUntilConnected(timeout: .seconds(30))
    }

    /// Ends the connection at once.
    func drop() async {
        let drop = connection.withLockedValue { current in
            defer { current = nil }
            return current
        }
        await drop?()
    }
}

/// A server of one backend running in a child process of this tool (`--serve BACKEND`), so that
/// its memory and CPU time are its own.
final class ServerChild {
    let port: Int
    private let process = Process()
    private let input = Pipe()

    init(_ backend: Backend, directory: String) throws {
        process.executableURL = URL(fileURLWithPath: CommandLine.arguments[0])
        process.arguments = ["--serve", backend.rawValue, "--certificates", directory]
        let output = Pipe()
        process.standardOutput = output
        process.standardInput = input
        try process.run()
        guard let line = output.fileHandleForReading.readLine(), line.hasPrefix("port "), let port = Int(line.dropFirst(5)) else {
            process.terminate()
            throw BenchError("the \(backend.rawValue) server child did not report its port")
        }
        self.port = port
    }

    /// Resident memory in bytes (VmRSS in /proc).
    func residentBytes() throws -> Int {
        guard let status = try? String(contentsOfFile: "/proc/\(process.processIdentifier)/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
              let kilobytes = line.split(separator: " ").dropFirst().first.flatMap({ Int($0) })
        else { throw BenchError("cannot read the server child's memory") }
        return kilobytes * 1024
    }

    /// User plus system CPU time so far, in seconds (utime and stime in /proc/PID/stat).
    func cpuSeconds() throws -> Double {
        guard let stat = try? String(contentsOfFile: "/proc/\(process.processIdentifier)/stat", encoding: .utf8),
              let afterName = stat.range(of: ") ")
        else { throw BenchError("cannot read the server child's CPU time") }
        // Fields after the command name start at field 3 (state); utime and stime are 14 and 15.
        let fields = stat[afterName.upperBound...].split(separator: " ")
        guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else {
            throw BenchError("cannot parse the server child's CPU time")
        }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    /// Ends the child (it stops when its standard input closes).
    func stop() {
        try? input.fileHandleForWriting.close()
        process.waitUntilExit()
    }
}

/// New connections: `workers` edges connect, wait for the server's HELLO and drop the
/// connection, `total` times in all, against a server in a child process. Returns connections
/// per second and the server's CPU time per connection (seconds).
func handshakeRate(_ backend: Backend, resume: Bool, total: Int, workers: Int, directory: String) async throws -> (rate: Double, serverCPU: Double) {
    let server = try ServerChild(backend, directory: directory)
    defer { server.stop() }
    let edges = try (0..<workers).map { try BenchEdge(node: "edge-\($0)", backend: backend, port: server.port, directory: directory, resume: resume) }
    // One connection each first, so resumed runs start with a ticket and nobody pays for first use.
    for edge in edges {
        try await edge.connect()
        await edge.drop()
    }
    let cpuBefore = try server.cpuSeconds()
    let start = ContinuousClock.now
    try await withThrowingTaskGroup(of: Void.self) { group in
        for edge in edges {
            group.addTask {
                for _ in 0..<(total / workers) {
                    try await edge.connect()
                    await edge.drop()
                }
            }
        }
        try await group.waitForAll()
    }
    let elapsed = ContinuousClock.now - start
    let connections = Double(total / workers * workers)
    let serverCPU = try server.cpuSeconds() - cpuBefore
    for edge in edges { await edge.channel.close() }
    return (connections / elapsed.seconds, serverCPU / connections)
}

/// Server memory per idle connection: `count` edges connect to a server in a child process and
/// stay idle; the child's resident memory grows by this much per connection (its channel
/// included). A warm-up round first fills the allocator's pools.
func memoryPerIdleConnection(_ backend: Backend, count: Int, directory: String) async throws -> Double {
    let server = try ServerChild(backend, directory: directory)
    defer { server.stop() }
    let port = server.port
    func connectAll(_ nodes: Range<Int>) async throws -> [BenchEdge] {
        try await withThrowingTaskGroup(of: BenchEdge.self) { group in
            var pending = nodes.makeIterator()
            func addNext() {
                guard let node = pending.next() else { return }
                group.addTask {
                    let edge = try BenchEdge(node: "edge-\(node)", backend: backend, port: port, directory: directory, resume: false)
                    try await edge.connect()
                    return edge
                }
            }
            // At most 32 handshakes at once.
            for _ in 0..<32 { addNext() }
            var edges: [BenchEdge] = []
            while let edge = try await group.next() {
                edges.append(edge)
                addNext()
            }
            return edges
        }
    }
    // Warm-up: a tenth of the count connects and leaves (its channels stay, on other nodes).
    for edge in try await connectAll(count..<(count + count / 10)) {
        await edge.drop()
        await edge.channel.close()
    }
    try await Task.sleep(for: .seconds(1))
    let before = try server.residentBytes()
    let edges = try await connectAll(0..<count)
    try await Task.sleep(for: .seconds(2))
    let after = try server.residentBytes()
    for edge in edges {
        await edge.drop()
        await edge.channel.close()
    }
    return Double(after - before) / Double(count)
}

/// The child side of ``ServerChild``: serves until its standard input closes.
func serveUntilStdinCloses(_ backend: Backend, directory: String) async throws {
    let server = try await startServer(backend, directory: directory)
    say("port \(server.port)")
    // Blocking read off the cooperative pool, on a thread of its own.
    await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
        Thread.detachNewThread {
            _ = FileHandle.standardInput.readDataToEndOfFile()
            continuation.resume()
        }
    }
    await server.stop()
}

extension FileHandle {
    /// One line of text read byte by byte (a child's first output line).
    func readLine() -> String? {
        var bytes: [UInt8] = []
        while true {
            let byte = readData(ofLength: 1)
            guard let first = byte.first else { return bytes.isEmpty ? nil : String(decoding: bytes, as: UTF8.self) }
            if first == UInt8(ascii: "\n") { return String(decoding: bytes, as: UTF8.self) }
            bytes.append(first)
        }
    }
}

/// `--connections`: handshake rates and memory per idle connection, both backends, one table.
func connectionBenchmarks(directory: String, quick: Bool) async throws {
    let total = quick ? 200 : 2000
    let idle = quick ? 200 : 1000
    let workers = 16
    func column(_ text: String) -> String { text.padding(toLength: 44, withPad: " ", startingAt: 0) }
    var results: [[String: Any]] = []
    say(column("new connections (\(workers) at a time, \(total) in all)") + "   connections/s   server CPU ms each")
    var rates: [String: Double] = [:]
    for (name, backend, resume) in [
        ("WebSocket+TLS (TCP)", Backend.webSocket, false), ("QUIC, full handshake + Retry", .quic, false), ("QUIC, resumed, HELLO in 0-RTT", .quic, true),
    ] {
        let (rate, serverCPU) = try await handshakeRate(backend, resume: resume, total: total, workers: workers, directory: directory)
        rates[name] = rate
        say(column(name) + String(format: " %12.0f %14.2f", rate, serverCPU * 1000))
        results.append(["scenario": "handshakes: \(name)", "connections_per_second": rate, "server_cpu_seconds_per_connection": serverCPU])
    }
    if let webSocket = rates["WebSocket+TLS (TCP)"], let full = rates["QUIC, full handshake + Retry"], let resumed = rates["QUIC, resumed, HELLO in 0-RTT"] {
        say(String(format: "QUIC full / WebSocket: %.2f×, QUIC resumed / WebSocket: %.2f×", full / webSocket, resumed / webSocket))
    }
    say(column("server memory per idle connection (\(idle))") + "   KiB")
    for (name, backend) in [("WebSocket+TLS (TCP)", Backend.webSocket), ("QUIC", .quic)] {
        let bytes = try await memoryPerIdleConnection(backend, count: idle, directory: directory)
        say(column(name) + String(format: " %12.1f", bytes / 1024))
        results.append(["scenario": "idle memory: \(name)", "bytes_per_connection": bytes])
    }
    if let json = try? JSONSerialization.data(withJSONObject: results, options: [.sortedKeys]) {
        say(String(decoding: json, as: UTF8.self))
    }
}
