@testable import Cloud
import Synchronization
import Testing
import TestSupport

/// The workers that write what edges send up: several nodes at once, each node in order, and
/// reading stops when the bounds are reached.
@Suite struct UpstreamWorkersTests {
    private struct Report: Sendable {
        let node: String
        let sequence: Int
    }

    /// Counts what is read from the sequence, handled, and in hand at once.
    private final class Tally: Sendable {
        struct State {
            var read = 0
            var handled: [String: [Int]] = [:]
            var running = 0
            var mostRunning = 0
            var mostReadAhead = 0
        }
        let state = Mutex(State())
    }

    @Test func eachNodeInOrderSeveralNodesAtOnce() async {
        let tally = Tally()
        let (reports, input) = AsyncStream<Report>.makeStream()
        for node in ["a", "b", "c", "d", "e"] {
            for sequence in 0..<50 { input.yield(Report(node: node, sequence: sequence)) }
        }
        input.finish()
        await UpstreamWorkers.run(reports, width: 3, maxQueuedPerNode: 1000, maxQueued: 1000, key: \.node) { report in
            tally.state.withLock { state in
                state.running += 1
                state.mostRunning = max(state.mostRunning, state.running)
            }
            // A node's first report takes longest, which would reorder them if the node's
            // reports ran side by side.
            try? await Task.sleep(for: report.sequence == 0 ? .milliseconds(20) : .microseconds(100))
            tally.state.withLock { state in
                state.running -= 1
                state.handled[report.node, default: []].append(report.sequence)
            }
        }
        let state = tally.state.withLock { $0 }
        for node in ["a", "b", "c", "d", "e"] { #expect(state.handled[node] == Array(0..<50), "\(node)") }
        #expect(state.mostRunning > 1, "nodes were served one at a time")
        #expect(state.mostRunning <= 3)
    }

    /// A node whose first report waits for another node's: served one at a time, this would
    /// never end.
    @Test func oneSlowNodeDoesNotHoldTheOthers() async {
        let released = Mutex(false)
        let (reports, input) = AsyncStream<Report>.makeStream()
        input.yield(Report(node: "slow", sequence: 0))
        input.yield(Report(node: "fast", sequence: 0))
        input.finish()
        await UpstreamWorkers.run(reports, width: 2, maxQueuedPerNode: 10, maxQueued: 10, key: \.node) { report in
            if report.node == "fast" {
                released.withLock { $0 = true }
                return
            }
            while !released.withLock({ $0 }) { try? await Task.sleep(for: .milliseconds(1)) }
        }
        #expect(released.withLock { $0 })
    }

    /// While one node's reports pile up behind a handler that is stuck, reading stops after
    /// `maxQueued` of them instead of taking everything into memory.
    @Test func stopsReadingWhenTheQueueIsFull() async {
        let tally = Tally()
        let gate = Mutex(false)
        let (reports, input) = AsyncStream<Report>.makeStream()
        let counted = CountingSequence(base: reports, tally: tally)
        for sequence in 0..<200 { input.yield(Report(node: "flood", sequence: sequence)) }
        input.finish()
        async let run: Void = UpstreamWorkers.run(counted, width: 4, maxQueuedPerNode: 10, maxQueued: 1000, key: \.node) { report in
            while !gate.withLock({ $0 }) { try? await Task.sleep(for: .milliseconds(1)) }
            tally.state.withLock { $0.handled[report.node, default: []].append(report.sequence) }
        }
        try? await Task.sleep(for: .milliseconds(200))
        let readWhileStuck = tally.state.withLock { $0.read }
        gate.withLock { $0 = true }
        await run
        // The one in hand, ten queued, and the one that found the queue full.
        #expect(readWhileStuck <= 12, "read \(readWhileStuck) while the handler was stuck")
        #expect(tally.state.withLock { $0.handled["flood"] } == Array(0..<200))
    }

    /// A node whose handler is stuck, its messages interleaved with another node's (as the
    /// hub's round-robin reader takes them): the other node is served all the while, and only
    /// the stuck node's bound stops reading, not a queue it filled for everyone.
    @Test func aStuckFloodingNodeDoesNotStarveAnother() async {
        let tally = Tally()
        let gate = Mutex(false)
        let (reports, input) = AsyncStream<Report>.makeStream()
        for sequence in 0..<100 {
            input.yield(Report(node: "flood", sequence: sequence))
            if sequence < 5 { input.yield(Report(node: "good", sequence: sequence)) }
        }
        input.finish()
        async let run: Void = UpstreamWorkers.run(reports, width: 4, maxQueuedPerNode: 10, maxQueued: 1000, key: \.node) { report in
            if report.node == "flood" {
                while !gate.withLock({ $0 }) { try? await Task.sleep(for: .milliseconds(1)) }
            }
            tally.state.withLock { $0.handled[report.node, default: []].append(report.sequence) }
        }
        let served = await eventually(timeout: .seconds(5)) { tally.state.withLock { $0.handled["good"] } == Array(0..<5) }
        #expect(served, "the good node's reports waited for the stuck node")
        gate.withLock { $0 = true }
        await run
        #expect(tally.state.withLock { $0.handled["flood"] } == Array(0..<100))
    }

    /// A node's full queue makes reading wait for its next message handled, not for its whole
    /// backlog: a report of another node that comes after the flood is handled while the flood
    /// still has messages to go.
    @Test func aFullNodeQueueWaitsForItsNextMessageNotItsWholeBacklog() async {
        let order = Mutex<[String]>([])
        let (reports, input) = AsyncStream<Report>.makeStream()
        for sequence in 0..<50 { input.yield(Report(node: "flood", sequence: sequence)) }
        input.yield(Report(node: "good", sequence: 0))
        input.finish()
        await UpstreamWorkers.run(reports, width: 4, maxQueuedPerNode: 5, maxQueued: 1000, key: \.node) { report in
            if report.node == "flood" { try? await Task.sleep(for: .milliseconds(5)) }
            order.withLock { $0.append("\(report.node)-\(report.sequence)") }
        }
        let handled = order.withLock { $0 }
        let good = handled.firstIndex(of: "good-0") ?? handled.count
        // Read once the flood's queue had room (about six of its messages left), then served at once.
        #expect(good < handled.count - 3, "the good node's report waited for the whole flood: \(handled.suffix(8))")
    }

    private struct CountingSequence: AsyncSequence, Sendable {
        let base: AsyncStream<Report>
        let tally: Tally

        struct Iterator: AsyncIteratorProtocol {
            var base: AsyncStream<Report>.Iterator
            let tally: Tally
            mutating func next() async -> Report? {
                guard let report = await base.next() else { return nil }
                tally.state.withLock { $0.read += 1 }
                return report
            }
        }

        func makeAsyncIterator() -> Iterator { Iterator(base: base.makeAsyncIterator(), tally: tally) }
    }
}
