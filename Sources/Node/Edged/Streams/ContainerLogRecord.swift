import KubeModel

/// One record of a container log in the CRI format both runtimes write
/// (`2026-12-07T20:00:00.123456789Z stdout F text`): when it was written, which stream, and
/// whether it ends a line (`F`) or is a piece of a longer one (`P`).
public struct ContainerLogRecord: Sendable, Equatable {
    /// The timestamp as written (RFC 3339 with nanoseconds).
    public var timestamp: Substring
    /// The time in nanoseconds since the Unix epoch.
    public var time: Int64
    public var stream: Substring
    public var isFullLine: Bool
    /// The text, without the newline of a full line.
    public var message: Substring

    /// Parses one line of a log file (without its newline); `nil` when it is not a record.
    public init?(line: Substring) {
        let fields = line.split(separator: " ", maxSplits: 3, omittingEmptySubsequences: false)
        guard fields.count >= 3, let time = RFC3339Time.nanoseconds(fields[0]) else { return nil }
        timestamp = fields[0]
        self.time = time
        stream = fields[1]
        isFullLine = fields[2] != "P"
        message = fields.count == 4 ? fields[3] : ""
    }

    /// The text of every record of `log` in order, as `kubectl logs` shows it: full lines end
    /// with a newline, pieces join the next record.
    public static func text(of log: String) -> String {
        var text = ""
        for line in log.split(separator: "\n", omittingEmptySubsequences: false) {
            guard let record = ContainerLogRecord(line: line) else { continue }
            text += record.message
            if record.isFullLine { text += "\n" }
        }
        return text
    }
}
