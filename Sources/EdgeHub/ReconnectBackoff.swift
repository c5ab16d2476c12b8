/// Exponential reconnect delays with jitter: the n-th consecutive failure waits
/// `min(max, initial · 2ⁿ)` scaled by a random factor in 0.5–1.5.
struct ReconnectBackoff {
    let initial: Duration
    let maximum: Duration
    private(set) var failures = 0

    init(initial: Duration, maximum: Duration) {
        self.initial = initial
        self.maximum = maximum
    }

    /// The delay before the next attempt, counting one more failure.
    mutating func nextDelay<G: RandomNumberGenerator>(using generator: inout G) -> Duration {
        let exponent = min(failures, 30)
        failures += 1
        let base = min(maximum, initial * (1 << exponent))
        return base * Double.random(in: 0.5...1.5, using: &generator)
    }

    mutating func nextDelay() -> Duration {
        var generator = SystemRandomNumberGenerator()
        return nextDelay(using: &generator)
    }

    /// A connection succeeded: start again from ``initial``.
    mutating func reset() { failures = 0 }
}
