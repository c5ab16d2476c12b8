import Logging
import Synchronization

/// Log lines kept in memory, for tests that check what a component logged: its
/// ``logger(label:)`` writes here (every level).
public final class CapturedLogs: Sendable {
    /// One line: its level, message and metadata.
    public struct Line: Sendable {
        public var level: Logger.Level
        public var message: String
        public var metadata: [String: String]
    }
    private let lines = Mutex<[Line]>([])

    public init() {}

    /// What was logged so far.
    public var all: [Line] { lines.withLock { $0 } }

    /// A logger whose lines are kept here.
    public func logger(label: String) -> Logger {
        Logger(label: label) { _ in Handler(logs: self) }
    }

    fileprivate func append(_ line: Line) { lines.withLock { $0.append(line) } }

    private struct Handler: LogHandler {
        let logs: CapturedLogs
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            let merged = metadata.merging(event.metadata ?? [:]) { $1 }
            logs.append(Line(level: event.level, message: "\(event.message)", metadata: merged.mapValues { "\($0)" }))
        }
    }
}
