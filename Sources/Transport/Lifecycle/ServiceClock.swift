import Foundation

/// The time a long-running part reads and waits on: its grace periods, back-offs and periodic
/// passes. Production code uses ``SystemServiceClock``; a test passes a clock it advances by
/// hand, so that a 40-second grace period or a 5-minute back-off is checked in microseconds,
/// without sleeping and without racing a real timer.
public protocol ServiceClock: Sendable {
    /// Wall-clock time, for what is compared with timestamps from elsewhere (a container's end
    /// as the runtime recorded it, a certificate's validity).
    var wallTime: Date { get }
    /// Monotonic time since an arbitrary fixed origin, for deadlines that must not move when the
    /// wall clock is set.
    var monotonic: Duration { get }
    /// Suspends for `duration` of this clock's time; throws `CancellationError` when the task
    /// is cancelled first.
    func sleep(for duration: Duration) async throws
}

/// The system's clocks: `Date()`, `ContinuousClock` and `Task.sleep`.
public struct SystemServiceClock: ServiceClock {
    private static let origin = ContinuousClock.now

    /// The system clock.
    public init() {}

    public var wallTime: Date { Date() }

    public var monotonic: Duration { Self.origin.duration(to: .now) }

    public func sleep(for duration: Duration) async throws {
        try await Task.sleep(for: duration)
    }
}

extension ServiceClock where Self == SystemServiceClock {
    /// The system's clocks.
    public static var system: SystemServiceClock { SystemServiceClock() }
}
