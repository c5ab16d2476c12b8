import Foundation
import Synchronization
import Transport

/// A ``ServiceClock`` that moves only when a test calls ``advance(by:)``: sleepers wake, in
/// deadline order, once the clock has passed their deadline. ``waitForSleepers(_:)`` lets a
/// test wait until the code under test is parked on the clock before it advances it, so that
/// no step depends on how fast the machine is.
public final class ManualClock: ServiceClock {
    private struct Sleeper {
        let deadline: Duration
        let continuation: CheckedContinuation<Void, any Error>
    }

    private struct State {
        var elapsed = Duration.zero
        var sleepers: [Int: Sleeper] = [:]
        var nextID = 0
        var cancelled: Set<Int> = []
    }

    private let state = Mutex(State())
    private let start: Date

    /// A clock whose wall time starts at `start` (now by default).
    public init(start: Date = Date()) {
        self.start = start
    }

    public var wallTime: Date { start.addingTimeInterval(Self.seconds(monotonic)) }

    public var monotonic: Duration { state.withLock { $0.elapsed } }

    /// How many tasks are asleep on this clock.
    public var sleeperCount: Int { state.withLock { $0.sleepers.count } }

    public func sleep(for duration: Duration) async throws {
        try Task.checkCancellation()
        let id = state.withLock { state in
            defer { state.nextID += 1 }
            return state.nextID
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let resumeNow: (any Error)?? = state.withLock { state in
                    if state.cancelled.remove(id) != nil { return .some(CancellationError()) }
                    let deadline = state.elapsed + max(duration, .zero)
                    guard deadline > state.elapsed else { return .some(nil) }
                    state.sleepers[id] = Sleeper(deadline: deadline, continuation: continuation)
                    return .none
                }
                switch resumeNow {
                case .some(let error?): continuation.resume(throwing: error)
                case .some(nil): continuation.resume()
                case .none: break
                }
            }
        } onCancel: {
            let sleeper = state.withLock { state -> Sleeper? in
                guard let sleeper = state.sleepers.removeValue(forKey: id) else {
                    state.cancelled.insert(id)
                    return nil
                }
                return sleeper
            }
            sleeper?.continuation.resume(throwing: CancellationError())
        }
        state.withLock { _ = $0.cancelled.remove(id) }
    }

    /// Moves the clock forward by `duration` and wakes every sleeper whose deadline it reached.
    public func advance(by duration: Duration) {
        let due = state.withLock { state -> [Sleeper] in
            state.elapsed += duration
            let now = state.elapsed
            let due = state.sleepers.filter { $0.value.deadline <= now }
            for id in due.keys { state.sleepers.removeValue(forKey: id) }
            return due.values.sorted { $0.deadline < $1.deadline }
        }
        for sleeper in due { sleeper.continuation.resume() }
    }

    /// Waits (in real time, at most `timeout`) until a task sleeps until exactly `deadline`
    /// (``monotonic`` time): one that went to sleep for `deadline - monotonic` after the clock
    /// last moved. Returns whether one does.
    @discardableResult
    public func waitForSleeper(until deadline: Duration, timeout: Duration = .seconds(20)) async -> Bool {
        await eventually(timeout: timeout) { self.state.withLock { $0.sleepers.values.contains { $0.deadline == deadline } } }
    }

    /// Waits (in real time, at most `timeout`) until at least `count` tasks sleep on the clock.
    /// Returns whether they do.
    @discardableResult
    public func waitForSleepers(_ count: Int = 1, timeout: Duration = .seconds(20)) async -> Bool {
        await eventually(timeout: timeout) { self.sleeperCount >= count }
    }

    private static func seconds(_ duration: Duration) -> TimeInterval {
        TimeInterval(duration.components.seconds) + TimeInterval(duration.components.attoseconds) / 1e18
    }
}
