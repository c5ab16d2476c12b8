import Foundation
import Synchronization

/// Measures how long the cooperative pool keeps a trivial task waiting: a thread of its own
/// (outside the pool, so that its clock is not delayed by what it measures) creates a task every
/// `interval` and the task notes how long it waited to start.
final class PoolStallProbe: Sendable {
    private let running = Atomic<Bool>(true)
    private let longestNanoseconds = Atomic<Int>(0)
    private let samples = Mutex<[Double]>([])
    private let done = Mutex<Bool>(false)

    /// Starts probing every `interval`.
    init(interval: Duration = .milliseconds(1)) {
        let micros = UInt32(interval.components.seconds * 1_000_000 + interval.components.attoseconds / 1_000_000_000_000)
        Thread.detachNewThread { [self] in
            while running.load(ordering: .relaxed) {
                let created = ContinuousClock.now
                Task.detached { [self] in
                    let waited = ContinuousClock.now - created
                    let nanoseconds = Int(waited.components.seconds * 1_000_000_000 + waited.components.attoseconds / 1_000_000_000)
                    var current = longestNanoseconds.load(ordering: .relaxed)
                    while nanoseconds > current {
                        let (exchanged, original) = longestNanoseconds.compareExchange(expected: current, desired: nanoseconds, ordering: .relaxed)
                        if exchanged { break }
                        current = original
                    }
                    samples.withLock { $0.append(Double(nanoseconds) / 1e9) }
                }
                usleep(micros)
            }
            done.withLock { $0 = true }
        }
    }

    /// Stops probing; the longest wait and the 99th percentile, in seconds.
    func stop() async -> (longest: Double, p99: Double) {
        running.store(false, ordering: .relaxed)
        while !done.withLock({ $0 }) { try? await Task.sleep(for: .milliseconds(1)) }
        try? await Task.sleep(for: .milliseconds(50))
        let sorted = samples.withLock { $0 }.sorted()
        let p99 = sorted.isEmpty ? 0 : sorted[min(sorted.count - 1, Int(Double(sorted.count - 1) * 0.99))]
        return (Double(longestNanoseconds.load(ordering: .relaxed)) / 1e9, p99)
    }
}
