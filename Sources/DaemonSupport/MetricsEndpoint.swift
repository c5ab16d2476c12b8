import Foundation
import Logging
import Metrics
import NIOCore
import NIOHTTP1
import NIOPosix
import Prometheus
import ServiceLifecycle
import Synchronization
import Transport

/// Turns the modules' counter snapshots into swift-metrics counters and gauges, read into the
/// Prometheus registry each time `/metrics` is scraped: `{daemon}_{module}_{counter}_total` for
/// every `Int` property of a module's counters, `{daemon}_{module}_{gauge}` for its levels, and
/// `process_resident_memory_bytes`.
public final class MetricsCollector: Sendable {
    /// One source of numbers: a module's counters (monotonic) and its current levels.
    public struct Source: Sendable {
        public var module: String
        public var counters: @Sendable () -> (any Sendable)?
        public var gauges: @Sendable () -> [String: Double]

        public init(module: String, counters: @escaping @Sendable () -> (any Sendable)?, gauges: @escaping @Sendable () -> [String: Double]) {
            self.module = module
            self.counters = counters
            self.gauges = gauges
        }
    }

    private let daemon: String
    private let sources: [Source]
    private let last = Mutex<[String: Int]>([:])

    /// A collector naming its metrics `{daemon}_…`.
    public init(daemon: String, sources: [Source]) {
        self.daemon = daemon
        self.sources = sources
    }

    /// Brings every metric up to date.
    public func collect() {
        for source in sources {
            if let snapshot = source.counters() {
                for child in Mirror(reflecting: snapshot).children {
                    guard let label = child.label, let value = child.value as? Int else { continue }
                    let name = "\(daemon)_\(source.module)_\(Self.snakeCase(label))_total"
                    let delta = last.withLock { last -> Int in
                        defer { last[name] = value }
                        return value - (last[name] ?? 0)
                    }
                    if delta > 0 { Counter(label: name).increment(by: delta) }
                }
            }
            for (name, value) in source.gauges() {
                Gauge(label: "\(daemon)_\(source.module)_\(name)").record(value)
            }
        }
        Gauge(label: "process_resident_memory_bytes").record(Double(Self.residentBytes()))
    }

    /// `objectsSent` → `objects_sent`.
    public static func snakeCase(_ name: String) -> String {
        var result = ""
        for character in name {
            if character.isUppercase {
                result += "_" + character.lowercased()
            } else {
                result.append(character)
            }
        }
        return result
    }

    /// Resident set size from `/proc/self/statm`.
    public static func residentBytes() -> Int {
        guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
        let fields = text.split(separator: " ")
        guard fields.count > 1, let pages = Int(fields[1]) else { return 0 }
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    }
}

/// `GET /metrics` in Prometheus text format, and `GET /healthz` (200 `ok` once the daemon is
/// ready, 503 before), on plain HTTP.
public struct MetricsEndpoint: Service {
    let host: String
    let port: Int
    let registry: PrometheusCollectorRegistry
    let collector: MetricsCollector
    let logger: Logger
    let isReady: @Sendable () -> Bool

    /// An endpoint on `host:port` serving `registry` after `collector` has brought it up to date;
    /// `isReady` decides `/healthz`.
    public init(host: String, port: Int, registry: PrometheusCollectorRegistry, collector: MetricsCollector, logger: Logger,
                isReady: @escaping @Sendable () -> Bool = { true }) {
        self.host = host
        self.port = port
        self.registry = registry
        self.collector = collector
        self.logger = logger
        self.isReady = isReady
    }

    public func run() async throws {
        let server = ConnectionServer<HTTPServerRequestPart, HTTPServerResponsePart>()
        let bound = try await server.bind(host: host, port: port) { channel in
            try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
        }
        logger.info("metrics listening", metadata: ["address": "\(host):\(bound)"])
        // Serve until the lifecycle shuts down (or cancels this task).
        await withGracefulShutdownHandler {
            await server.run { wrapped, _ in try? await serve(wrapped) }
        } onGracefulShutdown: {
            server.stop()
        }
    }

    private func serve(_ connection: NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>) async throws {
        try await connection.executeThenClose { inbound, outbound in
            var uri: String?
            for try await part in inbound {
                switch part {
                case .head(let head): uri = head.uri
                case .body: break
                case .end:
                    let (status, body): (HTTPResponseStatus, [UInt8])
                    switch uri {
                    case "/metrics"?:
                        collector.collect()
                        (status, body) = (.ok, registry.emitToBuffer())
                    case "/healthz"?: (status, body) = isReady() ? (.ok, Array("ok".utf8)) : (.serviceUnavailable, Array("starting".utf8))
                    default: (status, body) = (.notFound, Array("not found".utf8))
                    }
                    var head = HTTPResponseHead(version: .http1_1, status: status)
                    head.headers.add(name: "Content-Type", value: uri == "/metrics" ? "text/plain; version=0.0.4" : "text/plain")
                    head.headers.add(name: "Content-Length", value: "\(body.count)")
                    try await outbound.write(.head(head))
                    try await outbound.write(.body(.byteBuffer(ByteBuffer(bytes: body))))
                    try await outbound.write(.end(nil))
                }
            }
        }
    }
}
