import Foundation

/// The string formats a CustomResourceDefinition's schema may name that kube-apiserver checks
/// (apiextensions' supported formats); any other format is not checked, as there. A value that
/// fails is reported as `{field} in body must be of type {format}: "{value}"`.
enum SchemaFormats {
    /// Whether `text` has `format`; `nil` when this server does not check `format` (an
    /// unknown format, or `isbn`, `isbn10`, `isbn13` and `creditcard`, which are not checked
    /// here yet).
    static func check(_ text: String, format: String) -> Bool? {
        switch format.replacingOccurrences(of: "-", with: "") {
        case "datetime": isDateTime(text)
        case "date": isDate(text)
        case "uuid": matches(text, #"^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$"#)
        case "uuid3": matches(text, #"^[0-9a-f]{8}-?[0-9a-f]{4}-?3[0-9a-f]{3}-?[0-9a-f]{4}-?[0-9a-f]{12}$"#)
        case "uuid4": matches(text, #"^[0-9a-f]{8}-?[0-9a-f]{4}-?4[0-9a-f]{3}-?[89ab][0-9a-f]{3}-?[0-9a-f]{12}$"#)
        case "uuid5": matches(text, #"^[0-9a-f]{8}-?[0-9a-f]{4}-?5[0-9a-f]{3}-?[89ab][0-9a-f]{3}-?[0-9a-f]{12}$"#)
        case "ipv4": isIPv4(text)
        case "ipv6": text.contains(":") && isAddress(text, family: AF_INET6)
        case "cidr": isCIDR(text)
        case "mac": isMAC(text)
        case "byte": matches(text, #"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{4})$"#, caseInsensitive: false)
        case "hostname": isHostname(text)
        case "email": matches(text, #"^[^@\s]+@[^@\s]+$"#)
        case "uri": matches(text, #"^([a-z][a-z0-9+.-]*:|/)\S*$"#)
        case "bsonobjectid": matches(text, #"^[0-9a-f]{24}$"#)
        case "hexcolor": matches(text, #"^#?([0-9a-f]{3}|[0-9a-f]{6})$"#)
        case "rgbcolor": matches(text, #"^rgb\(\s*(0|[1-9]\d?|1\d\d?|2[0-4]\d|25[0-5])\s*,\s*(0|[1-9]\d?|1\d\d?|2[0-4]\d|25[0-5])\s*,\s*(0|[1-9]\d?|1\d\d?|2[0-4]\d|25[0-5])\s*\)$"#)
        case "ssn": matches(text, #"^\d{3}[- ]?\d{2}[- ]?\d{4}$"#)
        case "duration": isDuration(text)
        case "password": true
        default: nil
        }
    }

    private static func matches(_ text: String, _ pattern: String, caseInsensitive: Bool = true) -> Bool {
        guard let regex = try? NSRegularExpression(pattern: pattern, options: caseInsensitive ? [.caseInsensitive] : []) else { return false }
        return regex.firstMatch(in: text, range: NSRange(text.startIndex..., in: text)) != nil
    }

    /// RFC 3339 date-time (fraction and offset optional, as Go's ISO 8601 local time allows).
    private static func isDateTime(_ text: String) -> Bool {
        guard matches(text, #"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})?$"#) else { return false }
        let date = String(text.prefix(10))
        let clock = text.dropFirst(11).prefix(8).split(separator: ":").compactMap { Int($0) }
        return isDate(date) && clock.count == 3 && clock[0] < 24 && clock[1] < 60 && clock[2] < 60
    }

    /// RFC 3339 full-date: a real day of a real month.
    private static func isDate(_ text: String) -> Bool {
        guard matches(text, #"^\d{4}-\d{2}-\d{2}$"#) else { return false }
        let parts = text.split(separator: "-").compactMap { Int($0) }
        guard parts.count == 3, (1...12).contains(parts[1]), parts[2] >= 1 else { return false }
        let leap = parts[0] % 4 == 0 && (parts[0] % 100 != 0 || parts[0] % 400 == 0)
        let days = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][parts[1] - 1]
        return parts[2] <= days
    }

    /// Four decimal octets without leading zeros, as Go's `net.ParseIP` reads them.
    private static func isIPv4(_ text: String) -> Bool {
        let octets = text.split(separator: ".", omittingEmptySubsequences: false)
        return octets.count == 4 && octets.allSatisfy { octet in
            guard let value = Int(octet), value <= 255, octet.allSatisfy(\.isASCII) else { return false }
            return octet == "0" || !octet.hasPrefix("0")
        }
    }

    private static func isAddress(_ text: String, family: Int32) -> Bool {
        var buffer = [UInt8](repeating: 0, count: 16)
        return inet_pton(family, text, &buffer) == 1
    }

    private static func isCIDR(_ text: String) -> Bool {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let prefix = Int(parts[1]), parts[1].allSatisfy(\.isNumber) else { return false }
        let address = String(parts[0])
        if isIPv4(address) { return (0...32).contains(prefix) }
        return address.contains(":") && isAddress(address, family: AF_INET6) && (0...128).contains(prefix)
    }

    /// What Go's `net.ParseMAC` reads: 6, 8 or 20 octets as `01:23:…`, `01-23-…` or `0123.4567.…`.
    private static func isMAC(_ text: String) -> Bool {
        let hex = #"[0-9a-f]"#
        for octets in [6, 8, 20] {
            let colon = "^\(hex){2}(:\(hex){2}){\(octets - 1)}$"
            let dash = "^\(hex){2}(-\(hex){2}){\(octets - 1)}$"
            let dotted = "^\(hex){4}(\\.\(hex){4}){\(octets / 2 - 1)}$"
            if matches(text, colon) || matches(text, dash) || matches(text, dotted) { return true }
        }
        return false
    }

    /// RFC 1034 host names: dot-separated labels of at most 63 letters, digits and inner hyphens,
    /// 255 characters in all.
    private static func isHostname(_ text: String) -> Bool {
        guard !text.isEmpty, text.utf8.count <= 255 else { return false }
        return matches(text, #"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$"#)
    }

    /// A Go duration (`1h30m`, `250ms`) or a number and unit with a space (`22 ns`).
    private static func isDuration(_ text: String) -> Bool {
        matches(text, #"^[-+]?(\d+(\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)((\d+(\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h))*$"#)
            || matches(text, #"^\d+\s*(ns|us|µs|ms|s|m|h|d|w|nanoseconds?|microseconds?|milliseconds?|seconds?|minutes?|hours?|days?|weeks?)$"#)
    }
}
