import Logging

/// Logs of the benchmark tools go to standard error at `level` and above only, so that the
/// figures on standard output stand alone.
public func bootstrapBenchLogging(level: Logger.Level) {
    LoggingSystem.bootstrap { label in
        var handler = StreamLogHandler.standardError(label: label)
        handler.logLevel = level
        return handler
    }
}
