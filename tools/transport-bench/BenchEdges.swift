import Foundation
import Logging
import NIOCore
import NIOPosix
import Synchronization
import Transport

/// Latencies recorded by many consumers.
final class LatencyRecorder: Sendable {
    private let histogram = Mutex(makeLatencyHistogram())

    func record(_ microseconds: UInt64) {
        histogram.withLock { _ = $0.record(max(microseconds, 1)) }
    }

    var snapshot: LatencyHistogram { histogram.withLock { $0 } }

    func reset() { histogram.withLock { $0.reset() } }
}

/// Edges in this process: a bare channel per node (EdgeHub's bus hop is not part of the
/// figure), connected over one backend, consuming and timing what the cloud sends.
final class EdgeSet: Sendable {
    let names: [String]
    let channels: [MessageChannel]
    private let drops: [@Sendable () async -> Void]
    let received = Atomic<Int>(0)
    let latency = LatencyRecorder()
    private let consumers = Mutex<[Task<Void, Never>]>([])

    private init(names: [String], channels: [MessageChannel], drops: [@Sendable () async -> Void]) {
        self.names = names
        self.channels = channels
        self.drops = drops
    }

    /// Connects edges `indices` over `backend`, `parallelism` handshakes at a time.
    static func connect(
        indices: Range<Int>, backend: TransportBackend, port: Int, credentials: (Int) -> TLSFiles, channel template: ChannelConfiguration,
        parallelism: Int = 32, onConnected: @escaping @Sendable (Int) -> Void = { _ in }
    ) async throws -> EdgeSet {
        var names: [String] = []
        var channels: [MessageChannel] = []
        var drops: [@Sendable () async -> Void] = []
        let logger = { () -> Logger in
            var logger = Logger(label: "bench.edge")
            logger.logLevel = .warning
            return logger
        }()
        let all = Array(indices)
        var connected = 0
        for start in stride(from: 0, to: all.count, by: parallelism) {
            let batch = all[start..<min(start + parallelism, all.count)]
            let files = batch.map { ($0, credentials($0)) }
            try await withThrowingTaskGroup(of: (String, MessageChannel, @Sendable () async -> Void).self) { group in
                for (index, tls) in files {
                    group.addTask {
                        let node = benchNodeName(index)
                        var configuration = template
                        configuration.localNodeID = node
                        configuration.peerNodeID = "cloudhub"
                        let channel = try MessageChannel(configuration: configuration, logger: logger)
                        let drop: @Sendable () async -> Void
                        switch backend {
                        case .quic:
                            let connection = try await QUICConnector(
                                configuration: .init(port: port, serverName: "127.0.0.1", tls: tls, connectTimeout: .seconds(60)), logger: logger
                            ).connect(channel)
                            drop = { await connection.drop() }
                        case .webSocket:
                            let connection = try await WebSocketConnector(
                                configuration: .init(port: port, serverName: "127.0.0.1", tls: tls, connectTimeout: .seconds(60)), logger: logger
                            ).connect(channel)
                            drop = { await connection.drop() }
                        }
                        try await channel.waitUntilConnected(timeout: .seconds(60))
                        return (node, channel, drop)
                    }
                }
                for try await (node, channel, drop) in group {
                    names.append(node)
                    channels.append(channel)
                    drops.append(drop)
                    connected += 1
                    onConnected(connected)
                }
            }
        }
        return EdgeSet(names: names, channels: channels, drops: drops)
    }

    /// Consumes `lanes` of every edge, counting and timing each message.
    func startConsuming(lanes: [Lane]) {
        var started: [Task<Void, Never>] = []
        for channel in channels {
            for lane in lanes {
                started.append(Task { [self] in
                    for await message in channel.messages(on: lane) {
                        latency.record(latencyMicroseconds(of: message))
                        received.add(1, ordering: .relaxed)
                    }
                })
            }
        }
        consumers.withLock { $0 += started }
    }

    func close() async {
        for drop in drops { await drop() }
        for channel in channels { await channel.close() }
        for task in consumers.withLock({ $0 }) { await task.value }
    }
}
