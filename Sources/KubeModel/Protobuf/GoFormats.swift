/// The text forms Go's encoding gives the Kubernetes types that are numbers or bytes in
/// protobuf: RFC 3339 times (`metav1.Time`, `metav1.MicroTime`), durations
/// (`metav1.Duration`, Go's `time.Duration.String`) and base64 bytes. No Foundation: the edge
/// uses these too.
enum GoFormats {
    // MARK: times

    /// `seconds` since the Unix epoch (UTC) as `2006-01-02T15:04:05Z`, with `fractionDigits`
    /// digits of `nanos` (`.000000` for MicroTime) when non-zero.
    static func rfc3339(seconds: Int64, nanos: Int32, fractionDigits: Int = 0) -> String {
        let days = seconds >= 0 ? seconds / 86_400 : (seconds - 86_399) / 86_400
        let secondOfDay = seconds - days * 86_400
        let (year, month, day) = civil(fromDays: days)
        var text = pad(Int64(year), 4) + "-" + pad(Int64(month), 2) + "-" + pad(Int64(day), 2) + "T"
        text += pad(secondOfDay / 3600, 2) + ":" + pad(secondOfDay / 60 % 60, 2) + ":" + pad(secondOfDay % 60, 2)
        if fractionDigits > 0 {
            var divisor: Int64 = 1
            for _ in fractionDigits..<9 { divisor *= 10 }
            text += "." + pad(Int64(nanos) / divisor, fractionDigits)
        }
        return text + "Z"
    }

    /// Parses RFC 3339 (`Z` or a `±hh:mm` offset, optional fraction) into seconds since the
    /// epoch and nanoseconds; `nil` when `text` is not such a time.
    static func parseRFC3339(_ text: String) -> (seconds: Int64, nanos: Int32)? {
        let bytes = Array(text.utf8)
        func number(_ range: Range<Int>) -> Int64? {
            guard range.upperBound <= bytes.count else { return nil }
            var value: Int64 = 0
            for byte in bytes[range] {
                guard byte >= 48, byte <= 57 else { return nil }
                value = value * 10 + Int64(byte - 48)
            }
            return value
        }
        guard bytes.count >= 20, bytes[4] == 45, bytes[7] == 45, bytes[10] == 84 || bytes[10] == 116, bytes[13] == 58, bytes[16] == 58,
              let year = number(0..<4), let month = number(5..<7), let day = number(8..<10),
              let hour = number(11..<13), let minute = number(14..<16), let second = number(17..<19),
              (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60, second < 61 else { return nil }
        var index = 19
        var nanos: Int64 = 0
        if bytes[index] == 46 {
            index += 1
            var digits = 0
            while index < bytes.count, bytes[index] >= 48, bytes[index] <= 57 {
                if digits < 9 { nanos = nanos * 10 + Int64(bytes[index] - 48) }
                digits += 1
                index += 1
            }
            guard digits > 0 else { return nil }
            for _ in min(digits, 9)..<9 { nanos *= 10 }
        }
        guard index < bytes.count else { return nil }
        var offset: Int64 = 0
        switch bytes[index] {
        case 90, 122:
            index += 1
        case 43, 45:
            guard let hours = number(index + 1..<index + 3), index + 3 < bytes.count, bytes[index + 3] == 58,
                  let minutes = number(index + 4..<index + 6) else { return nil }
            offset = (hours * 3600 + minutes * 60) * (bytes[index] == 45 ? -1 : 1)
            index += 6
        default:
            return nil
        }
        guard index == bytes.count else { return nil }
        let days = daysFromCivil(year: year, month: month, day: day)
        return (days * 86_400 + hour * 3600 + minute * 60 + second - offset, Int32(nanos))
    }

    /// Days since 1970-01-01 of a proleptic Gregorian date.
    static func daysFromCivil(year: Int64, month: Int64, day: Int64) -> Int64 {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }

    /// The proleptic Gregorian date `days` after 1970-01-01.
    static func civil(fromDays days: Int64) -> (year: Int64, month: Int64, day: Int64) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let monthIndex = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * monthIndex + 2) / 5 + 1
        let month = monthIndex < 10 ? monthIndex + 3 : monthIndex - 9
        return (yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }

    private static func pad(_ value: Int64, _ width: Int) -> String {
        let digits = String(value)
        return digits.count >= width ? digits : String(repeating: "0", count: width - digits.count) + digits
    }

    // MARK: durations

    /// Go's `time.Duration.String()` of `nanoseconds`: `1h2m3.5s`, `150ms`, `0s`.
    static func duration(nanoseconds: Int64) -> String {
        if nanoseconds == 0 { return "0s" }
        let negative = nanoseconds < 0
        let magnitude = nanoseconds.magnitude
        let sign = negative ? "-" : ""
        if magnitude < 1_000_000_000 {
            let (unit, scale): (String, UInt64) = magnitude < 1000 ? ("ns", 1) : magnitude < 1_000_000 ? ("µs", 1000) : ("ms", 1_000_000)
            return sign + decimal(magnitude, scale: scale) + unit
        }
        let hours = magnitude / 3_600_000_000_000
        let minutes = magnitude / 60_000_000_000 % 60
        let seconds = magnitude % 60_000_000_000
        var text = sign
        if hours > 0 { text += "\(hours)h" }
        if hours > 0 || minutes > 0 { text += "\(minutes)m" }
        return text + decimal(seconds, scale: 1_000_000_000) + "s"
    }

    /// `value / scale` with the fraction's trailing zeros dropped.
    private static func decimal(_ value: UInt64, scale: UInt64) -> String {
        let whole = value / scale
        var fraction = value % scale
        guard fraction > 0 else { return String(whole) }
        var width = String(scale).count - 1
        while fraction % 10 == 0 {
            fraction /= 10
            width -= 1
        }
        let digits = String(fraction)
        return String(whole) + "." + String(repeating: "0", count: width - digits.count) + digits
    }

    /// Go's `time.ParseDuration`: a sequence of decimal numbers with units (`ns`, `us`, `µs`,
    /// `ms`, `s`, `m`, `h`), optionally signed; `nil` when `text` is not one.
    static func parseDuration(_ text: String) -> Int64? {
        var scalars = Substring(text)
        var negative = false
        if scalars.first == "-" || scalars.first == "+" {
            negative = scalars.first == "-"
            scalars = scalars.dropFirst()
        }
        if scalars == "0" { return 0 }
        guard !scalars.isEmpty else { return nil }
        var total: Double = 0
        while !scalars.isEmpty {
            let number = scalars.prefix { $0.isNumber || $0 == "." }
            guard !number.isEmpty, let value = Double(number) else { return nil }
            scalars = scalars.dropFirst(number.count)
            let unit = scalars.prefix { !$0.isNumber && $0 != "." }
            scalars = scalars.dropFirst(unit.count)
            let scale: Double
            switch unit {
            case "ns": scale = 1
            case "us", "µs", "μs": scale = 1e3
            case "ms": scale = 1e6
            case "s": scale = 1e9
            case "m": scale = 60e9
            case "h": scale = 3600e9
            default: return nil
            }
            total += value * scale
        }
        guard total < 9.3e18 else { return nil }
        return Int64((total).rounded()) * (negative ? -1 : 1)
    }

    // MARK: base64

    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    /// Standard base64 with padding, as Go's `encoding/json` writes `[]byte`.
    static func base64(_ bytes: some Collection<UInt8>) -> String {
        var output: [UInt8] = []
        output.reserveCapacity((bytes.count + 2) / 3 * 4)
        var iterator = bytes.makeIterator()
        while let first = iterator.next() {
            let second = iterator.next()
            let third = iterator.next()
            let value = UInt32(first) << 16 | UInt32(second ?? 0) << 8 | UInt32(third ?? 0)
            output.append(alphabet[Int(value >> 18 & 63)])
            output.append(alphabet[Int(value >> 12 & 63)])
            output.append(second == nil ? 61 : alphabet[Int(value >> 6 & 63)])
            output.append(third == nil ? 61 : alphabet[Int(value & 63)])
        }
        return String(decoding: output, as: UTF8.self)
    }

    /// Decodes standard base64 (padding optional, as Go's decoder for JSON requires it;
    /// whitespace refused); `nil` when `text` is not base64.
    static func decodeBase64(_ text: String) -> [UInt8]? {
        var output: [UInt8] = []
        var buffer: UInt32 = 0
        var count = 0
        var padding = 0
        for byte in text.utf8 {
            let value: UInt32
            switch byte {
            case 65...90: value = UInt32(byte - 65)
            case 97...122: value = UInt32(byte - 71)
            case 48...57: value = UInt32(byte + 4)
            case 43: value = 62
            case 47: value = 63
            case 61:
                padding += 1
                continue
            default: return nil
            }
            guard padding == 0 else { return nil }
            buffer = buffer << 6 | value
            count += 1
            if count == 4 {
                output.append(UInt8(buffer >> 16 & 255))
                output.append(UInt8(buffer >> 8 & 255))
                output.append(UInt8(buffer & 255))
                buffer = 0
                count = 0
            }
        }
        switch count {
        case 0: break
        case 2: output.append(UInt8(buffer >> 4 & 255))
        case 3:
            output.append(UInt8(buffer >> 10 & 255))
            output.append(UInt8(buffer >> 2 & 255))
        default: return nil
        }
        return padding <= 2 ? output : nil
    }
}
