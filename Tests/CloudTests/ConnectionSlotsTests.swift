@testable import Cloud
import Synchronization
import Testing

/// The limit on a client's requests in flight: past it requests wait their turn, in order,
/// and a waiting request that is cancelled leaves without taking a slot.
@Suite struct ConnectionSlotsTests {
    private final class Shared<Value: Sendable>: Sendable {
        let value: Mutex<Value>
        init(_ value: Value) { self.value = Mutex(value) }
        func withLock<Result>(_ body: (inout Value) -> Result) -> Result { value.withLock { body(&$0) } }
    }

    @Test func neverMoreThanTheLimitAndEveryoneGetsATurn() async throws {
        let slots = ConnectionSlots(limit: 3)
        let tally = Shared((running: 0, most: 0, done: 0))
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<40 {
                group.addTask {
                    try await slots.acquire()
                    tally.withLock { $0.running += 1; $0.most = max($0.most, $0.running) }
                    try await Task.sleep(for: .milliseconds(2))
                    tally.withLock { $0.running -= 1; $0.done += 1 }
                    slots.release()
                }
            }
            try await group.waitForAll()
        }
        let result = tally.withLock { $0 }
        #expect(result.done == 40)
        #expect(result.most == 3, "at most the limit, and the limit reached")
        #expect(slots.counts.inUse == 0 && slots.counts.waiting == 0)
    }

    @Test func waitersAreServedInArrivalOrder() async throws {
        let slots = ConnectionSlots(limit: 1)
        try await slots.acquire()
        let order = Shared<[Int]>([])
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<5 {
                group.addTask {
                    try await slots.acquire()
                    order.withLock { $0.append(index) }
                    slots.release()
                }
                // Each queued before the next arrives.
                while slots.counts.waiting < index + 1 { try await Task.sleep(for: .milliseconds(1)) }
            }
            slots.release()
            try await group.waitForAll()
        }
        #expect(order.withLock { $0 } == [0, 1, 2, 3, 4])
    }

    @Test func aCancelledWaiterLeavesWithoutASlot() async throws {
        let slots = ConnectionSlots(limit: 1)
        try await slots.acquire()
        let waiting = Task { try await slots.acquire() }
        while slots.counts.waiting < 1 { try await Task.sleep(for: .milliseconds(1)) }
        waiting.cancel()
        await #expect(throws: CancellationError.self) { try await waiting.value }
        #expect(slots.counts.inUse == 1 && slots.counts.waiting == 0)
        slots.release()
        #expect(slots.counts.inUse == 0 && slots.counts.waiting == 0)
        // Cancelled before it could even queue.
        try await slots.acquire()
        let early = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            try await slots.acquire()
        }
        await #expect(throws: CancellationError.self) { try await early.value }
        slots.release()
        #expect(slots.counts.inUse == 0 && slots.counts.waiting == 0)
    }
}
