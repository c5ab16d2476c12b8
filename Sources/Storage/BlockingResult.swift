import NIOConcurrencyHelpers

/// A result one thread waits for and another sets once (for callers that are not Swift tasks:
/// event loops, NIO's thread pool, start-up).
final class BlockingResult<T>: @unchecked Sendable {
    private let condition = ConditionLock(value: 0)
    private var result: Result<T, any Error>?

    func set(_ value: Result<T, any Error>) {
        condition.lock()
        result = value
        condition.unlock(withValue: 1)
    }

    func wait() -> Result<T, any Error> {
        condition.lock(whenValue: 1)
        defer { condition.unlock() }
        return result!
    }
}
