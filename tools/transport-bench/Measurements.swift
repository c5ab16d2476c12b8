import Foundation
import Histogram
#if canImport(Glibc)
import Glibc
#endif

/// Nanoseconds on the monotonic clock, the same in every process of the machine (latency is
/// measured from a timestamp the sender writes into the message to the moment it is taken).
func monotonicNanoseconds() -> UInt64 {
    var time = timespec()
    clock_gettime(CLOCK_MONOTONIC, &time)
    return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
}

/// Latencies in microseconds, 1 µs to 100 s at three significant digits.
typealias LatencyHistogram = Histogram<UInt64>

func makeLatencyHistogram() -> LatencyHistogram {
    LatencyHistogram(lowestDiscernibleValue: 1, highestTrackableValue: 100_000_000, numberOfSignificantValueDigits: .three)
}

/// The histogram's recorded buckets as `value:count` pairs (how child processes report).
func encodeBuckets(_ histogram: LatencyHistogram) -> String {
    histogram.recordedValues().map { "\($0.value):\($0.count)" }.joined(separator: ",")
}

func mergeBuckets(_ text: Substring, into histogram: inout LatencyHistogram) {
    for pair in text.split(separator: ",") {
        let parts = pair.split(separator: ":")
        guard parts.count == 2, let value = UInt64(parts[0]), let count = UInt64(parts[1]) else { continue }
        _ = histogram.record(value, count: count)
    }
}

/// A line on standard error rewritten in place while a phase runs.
final class ProgressLine: @unchecked Sendable {
    private let lock = NSLock()
    private var task: Task<Void, Never>?

    /// Starts printing `status()` once a second.
    func start(_ label: String, status: @escaping @Sendable () -> String) {
        let started = Date()
        task = Task.detached {
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(1))
                if Task.isCancelled { break }
                let line = String(format: "\r  %@ %5.1fs  %@", label, Date().timeIntervalSince(started), status())
                FileHandle.standardError.write(Data((line.padding(toLength: 100, withPad: " ", startingAt: 0)).utf8))
            }
        }
    }

    func stop() {
        task?.cancel()
        task = nil
        FileHandle.standardError.write(Data(("\r" + String(repeating: " ", count: 100) + "\r").utf8))
    }
}

/// One row of the result table.
struct ResultRow: Codable {
    var scenario: String
    var messagesPerSecond: Double?
    var megabytesPerSecond: Double?
    var p50Microseconds: UInt64?
    var p99Microseconds: UInt64?
    var p999Microseconds: UInt64?
    var cpuPercent: Double?
    var residentMegabytes: Double?
    var note: String?
}

/// Prints the rows as an aligned table.
func printTable(_ rows: [ResultRow]) {
    func cell(_ value: Double?, _ format: String) -> String { value.map { String(format: format, $0) } ?? "-" }
    func cell(_ value: UInt64?) -> String { value.map { "\($0)" } ?? "-" }
    let header = ["scenario", "msg/s", "MB/s", "p50 µs", "p99 µs", "p99.9 µs", "CPU %", "RSS MB", "note"]
    let lines = rows.map { row in
        [row.scenario, cell(row.messagesPerSecond, "%.0f"), cell(row.megabytesPerSecond, "%.1f"), cell(row.p50Microseconds), cell(row.p99Microseconds),
         cell(row.p999Microseconds), cell(row.cpuPercent, "%.0f"), cell(row.residentMegabytes, "%.1f"), row.note ?? ""]
    }
    var widths = header.map(\.count)
    for line in lines { for (index, value) in line.enumerated() { widths[index] = max(widths[index], value.count) } }
    func render(_ values: [String]) -> String {
        values.enumerated().map { index, value in
            index == 0 || index == values.count - 1 ? value.padding(toLength: widths[index], withPad: " ", startingAt: 0)
                : String(repeating: " ", count: widths[index] - value.count) + value
        }.joined(separator: "  ")
    }
    print(render(header))
    print(widths.map { String(repeating: "-", count: $0) }.joined(separator: "  "))
    for line in lines { print(render(line)) }
}
