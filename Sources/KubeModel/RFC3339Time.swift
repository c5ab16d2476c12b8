/// RFC 3339 times as nanoseconds since the Unix epoch, for container logs and `sinceTime`
/// (`2026-12-07T20:00:00.5Z`, `…+02:00`). No Foundation: the edge uses it.
public enum RFC3339Time {
    /// Nanoseconds since the epoch; `nil` for anything that is not RFC 3339.
    public static func nanoseconds(_ text: some StringProtocol) -> Int64? {
        guard let (seconds, nanos) = GoFormats.parseRFC3339(String(text)) else { return nil }
        return seconds * 1_000_000_000 + Int64(nanos)
    }

    /// `nanoseconds` as Go's RFC3339Nano writes it: as many fractional digits as needed.
    public static func format(nanoseconds: Int64) -> String {
        let seconds = nanoseconds >= 0 ? nanoseconds / 1_000_000_000 : (nanoseconds - 999_999_999) / 1_000_000_000
        let nanos = Int32(nanoseconds - seconds * 1_000_000_000)
        guard nanos > 0 else { return GoFormats.rfc3339(seconds: seconds, nanos: 0) }
        var text = GoFormats.rfc3339(seconds: seconds, nanos: nanos, fractionDigits: 9)
        text.removeLast()
        while text.hasSuffix("0") { text.removeLast() }
        return text + "Z"
    }
}
