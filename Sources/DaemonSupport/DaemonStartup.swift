import Logging
import Metrics
import Prometheus
import ServiceLifecycle

/// What both daemons do around their modules: logging and metrics set up once, then the
/// services run until SIGTERM or SIGINT stops them in reverse order.
public enum DaemonStartup {
    /// Logs to standard error at `logLevel` (`info` when it is not a level) and puts swift-metrics
    /// behind the returned Prometheus registry.
    public static func bootstrap(logLevel: String) -> PrometheusCollectorRegistry {
        let level = Logger.Level(rawValue: logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        return registry
    }

    /// Runs `services` until SIGTERM or SIGINT, then stops them gracefully.
    public static func run(_ services: [any Service], logger: Logger) async throws {
        let group = ServiceGroup(configuration: .init(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
    }
}
