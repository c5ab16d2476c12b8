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

/// RFC 3339 times as Kubernetes writes them (`2026-12-07T20:00:00.5Z`, `…+02:00`).
public enum RFC3339Time {
    /// Nanoseconds since the Unix epoch; `nil` for anything else.
    public static func nanoseconds(_ text: Substring) -> Int64? {
        let bytes = Array(text.utf8)
        func number(_ start: Int, _ count: Int) -> Int64? {
            guard start + count <= bytes.count else { return nil }
            var value: Int64 = 0
            for byte in bytes[start..<start + count] {
                guard byte >= 48, byte <= 57 else { return nil }
                value = value * 10 + Int64(byte - 48)
            }
            return value
        }
        guard bytes.count >= 20, bytes[4] == 45, bytes[7] == 45, bytes[10] == 84 || bytes[10] == 116, bytes[13] == 58, bytes[16] == 58,
              let year = number(0, 4), let month = number(5, 2), let day = number(8, 2),
              let hour = number(11, 2), let minute = number(14, 2), let second = number(17, 2),
              (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60, second < 61
        else { return nil }
        var index = 19
        var nanos: Int64 = 0
        if index < bytes.count, bytes[index] == 46 {
            index += 1
            var digits = 0
            while index < bytes.count, bytes[index] >= 48, bytes[index] <= 57 {
                if digits < 9 { nanos = nanos * 10 + Int64(bytes[index] - 48) }
                digits += 1
                index += 1
            }
            guard digits > 0 else { return nil }
            if digits < 9 { for _ in digits..<9 { nanos *= 10 } }
        }
        guard index < bytes.count else { return nil }
        var offset: Int64 = 0
        if bytes[index] == 90 || bytes[index] == 122 {
            index += 1
        } else if bytes[index] == 43 || bytes[index] == 45, let hours = number(index + 1, 2), bytes.count > index + 3, bytes[index + 3] == 58,
                  let minutes = number(index + 4, 2) {
            offset = (hours * 60 + minutes) * 60 * (bytes[index] == 43 ? 1 : -1)
            index += 6
        } else {
            return nil
        }
        guard index == bytes.count else { return nil }
        // Days from the civil date (proleptic Gregorian).
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        let days = era * 146_097 + dayOfEra - 719_468
        let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset
        return seconds * 1_000_000_000 + nanos
    }

    /// `nanoseconds` as RFC 3339 with as many fractional digits as needed (Go's RFC3339Nano).
    public static func format(nanoseconds: Int64) -> String {
        let seconds = nanoseconds >= 0 ? nanoseconds / 1_000_000_000 : (nanoseconds - 999_999_999) / 1_000_000_000
        let nanos = nanoseconds - seconds * 1_000_000_000
        let days = seconds >= 0 ? seconds / 86_400 : (seconds - 86_399) / 86_400
        let secondOfDay = seconds - days * 86_400
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let monthIndex = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * monthIndex + 2) / 5 + 1
        let month = monthIndex < 10 ? monthIndex + 3 : monthIndex - 9
        let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
        func two(_ value: Int64) -> String { value < 10 ? "0\(value)" : "\(value)" }
        var text = "\(year)-\(two(month))-\(two(day))T\(two(secondOfDay / 3600)):\(two(secondOfDay / 60 % 60)):\(two(secondOfDay % 60))"
        if nanos > 0 {
            var fraction = String(nanos)
            fraction = String(repeating: "0", count: 9 - fraction.count) + fraction
            while fraction.hasSuffix("0") { fraction.removeLast() }
            text += "." + fraction
        }
        return text + "Z"
    }
}
