/// Kubelet's crash-loop back-off: before restart N (N ≥ 1) wait `initial · 2^(N-1)`, at most
/// `maximum` (10 s doubling to 5 min by default).
public struct RestartBackoff: Sendable, Equatable {
    public var initial: Duration
    public var maximum: Duration

    public init(initial: Duration = .seconds(10), maximum: Duration = .seconds(300)) {
        self.initial = initial
        self.maximum = maximum
    }

    /// The wait before starting attempt `attempt` (0 is the first start: no wait).
    public func delay(beforeAttempt attempt: Int) -> Duration {
        guard attempt > 0 else { return .zero }
        var delay = initial
        for _ in 1..<attempt {
            delay = delay * 2
            if delay >= maximum { return maximum }
        }
        return min(delay, maximum)
    }
}
