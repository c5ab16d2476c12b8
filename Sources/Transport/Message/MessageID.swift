import Synchronization

/// A 128-bit message identifier, printed in UUID form (`8-4-4-4-12` lower-case hex).
///
/// Identifiers made by ``next()`` combine a random per-process prefix with an atomic counter, so
/// creating one costs an atomic increment, not a system call; they are unique within a process
/// and, with overwhelming probability, across processes.
public struct MessageID: Hashable, Sendable, CustomStringConvertible {
    /// The high 64 bits.
    public var high: UInt64
    /// The low 64 bits.
    public var low: UInt64

    /// The all-zero identifier, used where an identifier is absent.
    public static let zero = MessageID(high: 0, low: 0)

    /// Creates an identifier from its two halves.
    public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    /// A fresh identifier, unique within this process.
    public static func next() -> MessageID {
        let count = messageIDCounter.wrappingAdd(1, ordering: .relaxed).newValue
        // Version 4 / variant 1 bits keep the text form a valid random-looking UUID.
        let high = (processPrefix & 0xFFFF_FFFF_FFFF_0FFF) | 0x0000_0000_0000_4000
        let low = (count & 0x3FFF_FFFF_FFFF_FFFF) | 0x8000_0000_0000_0000
        return MessageID(high: high, low: low)
    }

    /// Parses the UUID text form (case-insensitive, with dashes); `nil` if malformed.
    public init?(uuidString: String) {
        var digits: [UInt8] = []
        digits.reserveCapacity(32)
        for (index, byte) in uuidString.utf8.enumerated() {
            if byte == UInt8(ascii: "-") {
                guard [8, 13, 18, 23].contains(index) else { return nil }
                continue
            }
            guard let value = Self.hexValue(byte) else { return nil }
            digits.append(value)
        }
        guard digits.count == 32, uuidString.utf8.count == 36 else { return nil }
        var high: UInt64 = 0
        var low: UInt64 = 0
        for digit in digits[0..<16] { high = high << 4 | UInt64(digit) }
        for digit in digits[16..<32] { low = low << 4 | UInt64(digit) }
        self.init(high: high, low: low)
    }

    /// The UUID text form.
    public var description: String {
        let hex = Array("0123456789abcdef".utf8)
        var bytes: [UInt8] = []
        bytes.reserveCapacity(36)
        for (index, half) in [high, low].enumerated() {
            for nibble in 0..<16 {
                let position = index * 16 + nibble
                if position == 8 || position == 12 || position == 16 || position == 20 {
                    bytes.append(UInt8(ascii: "-"))
                }
                bytes.append(hex[Int((half >> UInt64(60 - nibble * 4)) & 0xF)])
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}

private let messageIDCounter = Atomic<UInt64>(0)
private let processPrefix: UInt64 = UInt64.random(in: .min ... .max)
