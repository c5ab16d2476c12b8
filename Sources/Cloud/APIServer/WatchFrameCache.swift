import Synchronization

/// The protobuf watch frames of recent changes, by revision: the first watcher that sends a
/// change encodes it and every other watcher of it sends the same bytes (kube-apiserver caches
/// an object's serialisation per encoding the same way). Holds the last `capacity` changes.
final class WatchFrameCache: Sendable {
    private struct State {
        var frames: [Int64: [UInt8]] = [:]
        var order: [Int64] = []
        var oldest = 0
    }

    private let state = Mutex(State())
    private let capacity: Int

    init(capacity: Int = 4096) {
        self.capacity = capacity
    }

    /// The frame of the change at `revision`, made by `encode` the first time.
    func frame(revision: Int64, _ encode: () throws -> [UInt8]) rethrows -> [UInt8] {
        if let cached = state.withLock({ $0.frames[revision] }) { return cached }
        let frame = try encode()
        state.withLock { state in
            guard state.frames.updateValue(frame, forKey: revision) == nil else { return }
            if state.order.count < capacity {
                state.order.append(revision)
            } else {
                state.frames[state.order[state.oldest]] = nil
                state.order[state.oldest] = revision
                state.oldest = (state.oldest + 1) % capacity
            }
        }
        return frame
    }

    var count: Int { state.withLock { $0.frames.count } }
}
