import Foundation

/// A Kubernetes resource quantity (`500m`, `1.5`, `128Mi`, `1G`, `2e3`), as the API writes CPU
/// and memory amounts.
public struct Quantity: Sendable, Equatable, CustomStringConvertible {
    /// The exact amount in base units (cores, bytes).
    public let amount: Decimal
    public let description: String

    /// Parses `text`; `nil` when it is not a quantity.
    public init?(_ text: String) {
        let suffixes: [(String, Decimal)] = [
            ("Ki", 1024), ("Mi", 1_048_576), ("Gi", 1_073_741_824), ("Ti", Decimal(1_099_511_627_776)),
            ("Pi", Decimal(1_125_899_906_842_624)), ("Ei", Decimal(string: "1152921504606846976")!),
            ("n", Decimal(string: "0.000000001")!), ("u", Decimal(string: "0.000001")!), ("m", Decimal(string: "0.001")!),
            ("k", 1_000), ("M", 1_000_000), ("G", 1_000_000_000), ("T", Decimal(string: "1000000000000")!),
            ("P", Decimal(string: "1000000000000000")!), ("E", Decimal(string: "1000000000000000000")!),
        ]
        var number = Substring(text)
        var factor: Decimal = 1
        if let (suffix, value) = suffixes.first(where: { text.hasSuffix($0.0) }) {
            number = number.dropLast(suffix.count)
            factor = value
        } else if let exponent = text.firstIndex(where: { $0 == "e" || $0 == "E" }) {
            guard let power = Int(text[text.index(after: exponent)...]), abs(power) <= 18 else { return nil }
            number = text[..<exponent]
            factor = power >= 0 ? pow(10, power) : 1 / pow(10, -power)
        }
        // Digits with at most one point, optionally signed; nothing else.
        let body = number.first == "+" || number.first == "-" ? number.dropFirst() : number
        guard !body.isEmpty, body.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == ".") }), body.filter({ $0 == "." }).count <= 1,
              body != ".", let value = Decimal(string: String(number)) else { return nil }
        amount = value * factor
        description = text
    }

    /// The amount in thousandths of the base unit, rounded up (CPU in millicores).
    public var milliValue: Int64 { Self.roundedUp(amount * 1000) }
    /// The amount rounded up to a whole base unit (memory in bytes).
    public var value: Int64 { Self.roundedUp(amount) }

    private static func roundedUp(_ decimal: Decimal) -> Int64 {
        var input = decimal
        var rounded = Decimal()
        NSDecimalRound(&rounded, &input, 0, .up)
        return NSDecimalNumber(decimal: rounded).int64Value
    }
}
