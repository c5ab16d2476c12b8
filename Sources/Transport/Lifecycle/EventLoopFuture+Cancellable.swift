import NIOCore
import Synchronization

extension EventLoopFuture where Value: Sendable {
    /// Waits for the future like `get()`, but returns `nil` at once when the waiting task is
    /// cancelled (the future itself goes on).
    public func valueUnlessCancelled() async throws -> Value? {
        let once = ResumeOnce<Value?>()
        return try await withTaskCancellationHandler {
            try await withUnsafeThrowingContinuation { (continuation: UnsafeContinuation<Value?, any Error>) in
                once.arm(continuation)
                if Task.isCancelled { once.resume(with: .success(nil)) }
                whenComplete { result in once.resume(with: result.map { $0 }) }
            }
        } onCancel: {
            once.resume(with: .success(nil))
        }
    }
}

/// A continuation resumed once, by whichever of its resumers comes first.
final class ResumeOnce<T: Sendable>: Sendable {
    private let state = Mutex<(continuation: UnsafeContinuation<T, any Error>?, early: Result<T, any Error>?, done: Bool)>((nil, nil, false))

    func arm(_ continuation: UnsafeContinuation<T, any Error>) {
        let early: Result<T, any Error>? = state.withLock { state in
            if let early = state.early {
                state.done = true
                return early
            }
            state.continuation = continuation
            return nil
        }
        if let early { continuation.resume(with: early) }
    }

    func resume(with result: Result<T, any Error>) {
        let continuation: UnsafeContinuation<T, any Error>? = state.withLock { state in
            guard !state.done else { return nil }
            guard let continuation = state.continuation else {
                if state.early == nil { state.early = result }
                return nil
            }
            state.done = true
            state.continuation = nil
            return continuation
        }
        continuation?.resume(with: result)
    }
}
