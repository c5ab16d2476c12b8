import NIOCore
import Synchronization

/// A module's end of the ``MessageBus``.
public final class BusEndpoint: ChannelEndpoint, LaneSource {
    /// The module name.
    public let name: String
    /// The module group.
    public let group: String
    /// Whether this module reports handling itself with ``handled(_:)``; otherwise a message
    /// counts as handled once the module takes it.
    public let acknowledgesHandling: Bool
    /// Weak: modules may outlive the bus that made them; they then get ``BusError/busReleased``.
    private weak let bus: MessageBus?
    private let configuration: MessageBus.Configuration
    private let state: Mutex<State>

    private struct State {
        var lanes: [Queue]
        var requests: [MessageID: PendingRequest] = [:]
        /// Receipts of messages taken but not yet reported handled.
        var receipts: [MessageID: [HandlingReceipt]] = [:]
        var closed = false
    }

    private struct Queue {
        var messages = CircularBuffer<Queued>()
        var bytes = 0
        var consumer: UnsafeContinuation<Message?, Never>?
        var senders: [UnsafeContinuation<Bool, Never>] = []
    }

    private struct Queued {
        var message: Message
        var receipt: HandlingReceipt?
    }

    /// A request sent (or being sent) and its answer, whichever comes first: the caller waiting,
    /// or the outcome it will find.
    private enum PendingRequest {
        case sending
        case waiting(UnsafeContinuation<Message, any Error>)
        case finished(Result<Message, any Error>)
    }

    init(name: String, group: String, acknowledgesHandling: Bool, bus: MessageBus) {
        self.name = name
        self.group = group
        self.acknowledgesHandling = acknowledgesHandling
        self.bus = bus
        configuration = bus.configuration
        state = Mutex(State(lanes: Array(repeating: Queue(), count: bus.configuration.laneCount)))
    }

    public func send(_ message: Message, on lane: Lane, delivery: Delivery) async throws {
        await deliver(message, to: try targets(for: message, lane: lane), lane: lane, receipt: nil)
    }

    private func deliver(_ message: Message, to targets: [BusEndpoint], lane: Lane, receipt: HandlingReceipt?) async {
        for target in targets {
            while true {
                let accepted = await withUnsafeContinuation { (continuation: UnsafeContinuation<Bool, Never>) in
                    switch target.offer(message, lane: lane, receipt: receipt, waiter: continuation) {
                    case .accepted, .dropped: continuation.resume(returning: true)
                    case .wouldBlock: break  // parked; resumed with `false` when the consumer drains
                    }
                }
                if accepted { break }
            }
        }
    }

    /// Sends `message` to every module of `group` (or, if it answers a pending request, to the
    /// requester), whatever its router says: a hub uses it to route cloud groups to module groups.
    public func send(_ message: Message, toGroup group: String, on lane: Lane) async throws {
        await deliver(message, to: try targets(for: message, lane: lane, group: group), lane: lane, receipt: nil)
    }

    /// Sends `message` to every module of `group` like ``send(_:toGroup:on:)`` and calls
    /// `whenHandled` once every receiving module has handled it: at once for a module that
    /// does not acknowledge handling (when it takes the message), after ``handled(_:)`` for one
    /// that does. A module that leaves the bus first never handles its messages, so
    /// `whenHandled` is then never called: a hub relies on that to have the cloud send again.
    public func send(_ message: Message, toGroup group: String, on lane: Lane, whenHandled: @escaping @Sendable () -> Void) async throws {
        let targets = try targets(for: message, lane: lane, group: group)
        guard !targets.isEmpty else { return whenHandled() }
        await deliver(message, to: targets, lane: lane, receipt: HandlingReceipt(receivers: targets.count, whenHandled: whenHandled))
    }

    /// Reports that this module has handled `message` (stored it, say). Only modules registered
    /// with `acknowledgesHandling` need to; unknown messages are ignored.
    public func handled(_ message: Message) {
        let receipts = state.withLock { $0.receipts.removeValue(forKey: message.header.id) } ?? []
        for receipt in receipts { receipt.receiverHandled() }
    }

    public func trySend(_ message: Message, on lane: Lane, delivery: Delivery) throws -> TrySendResult {
        let targets = try targets(for: message, lane: lane)
        var result = TrySendResult.accepted
        for target in targets where target.offer(message, lane: lane, receipt: nil, waiter: nil) == .wouldBlock { result = .wouldBlock }
        return result
    }

    public func messages(on lane: Lane) -> LaneMessages { LaneMessages(source: self, lane: lane) }

    public func request(_ message: Message, on lane: Lane = .request, timeout: Duration? = nil) async throws -> Message {
        try await request(message, group: nil, on: lane, timeout: timeout)
    }

    /// Sends `message` as a request to every module of `group` whatever its router says (a module
    /// asking the cloud through the hub, say) and waits for the response.
    public func request(_ message: Message, toGroup group: String, on lane: Lane = .request, timeout: Duration? = nil) async throws -> Message {
        try await request(message, group: group, on: lane, timeout: timeout)
    }

    private func request(_ message: Message, group: String?, on lane: Lane, timeout: Duration?) async throws -> Message {
        var message = message
        message.header.sync = true
        if message.router.source.isEmpty { message.router.source = name }
        let id = message.header.id
        guard let bus else { throw BusError.busReleased }
        let timeout = timeout ?? configuration.requestTimeout
        // Registered before the request goes out: its answer may come back before `send` returns.
        state.withLock { $0.requests[id] = .sending }
        bus.awaitResponse(to: id, at: self)
        let timer = NIOSingletons.posixEventLoopGroup.any().scheduleTask(in: .nanoseconds(timeout.nanoseconds)) { [self, weak bus] in
            bus?.forgetRequest(id)
            finishRequest(id, with: .failure(TransportError.requestTimedOut(id, timeout)))
        }
        defer { timer.cancel() }
        do {
            if let group {
                try await send(message, toGroup: group, on: lane)
            } else {
                try await send(message, on: lane, delivery: .reliable)
            }
        } catch {
            bus.forgetRequest(id)
            finishRequest(id, with: .failure(error))
        }
        return try await withTaskCancellationHandler {
            try await withUnsafeThrowingContinuation { (continuation: UnsafeContinuation<Message, any Error>) in
                let outcome: Result<Message, any Error>? = state.withLock { state in
                    switch state.requests[id] {
                    case .finished(let outcome)?:
                        state.requests[id] = nil
                        return outcome
                    case .sending?:
                        if Task.isCancelled {
                            state.requests[id] = nil
                            return .failure(CancellationError())
                        }
                        state.requests[id] = .waiting(continuation)
                        return nil
                    case .waiting?, nil:
                        return .failure(TransportError.closed)
                    }
                }
                if let outcome { continuation.resume(with: outcome) }
            }
        } onCancel: { [weak bus] in
            bus?.forgetRequest(id)
            finishRequest(id, with: .failure(CancellationError()))
        }
    }

    /// Settles request `id`: resumes its caller, or leaves the outcome for it to find.
    private func finishRequest(_ id: MessageID, with outcome: Result<Message, any Error>) {
        let waiting: UnsafeContinuation<Message, any Error>? = state.withLock { state in
            switch state.requests[id] {
            case .sending?:
                state.requests[id] = .finished(outcome)
                return nil
            case .waiting(let continuation)?:
                state.requests[id] = nil
                return continuation
            case .finished?, nil:
                return nil
            }
        }
        waiting?.resume(with: outcome)
    }

    /// Takes the next queued message of `lane` without waiting; `nil` when none is queued. A
    /// module drains a burst this way after `messages(on:)` yields one, to handle it in a batch.
    public func pollMessage(on lane: Lane) -> Message? {
        let index = Int(lane.rawValue)
        let (message, senders, handledNow): (Message?, [UnsafeContinuation<Bool, Never>], HandlingReceipt?) = state.withLock { state in
            guard index < state.lanes.count, let queued = state.lanes[index].messages.popFirst() else { return (nil, [], nil) }
            state.lanes[index].bytes -= queued.message.content.readableBytes
            defer { state.lanes[index].senders = [] }
            return (queued.message, state.lanes[index].senders, taken(queued, state: &state))
        }
        handledNow?.receiverHandled()
        for sender in senders { sender.resume(returning: false) }
        return message
    }

    /// The next message of `lane`, waiting for one; `nil` once the module left the bus or the
    /// waiting task is cancelled (the message stays queued).
    func nextMessage(on lane: Lane) async -> Message? {
        let index = Int(lane.rawValue)
        guard index < state.withLock({ $0.lanes.count }) else { return nil }
        return await withTaskCancellationHandler {
            await withUnsafeContinuation { (continuation: UnsafeContinuation<Message?, Never>) in
                let (result, senders, handledNow): (Message??, [UnsafeContinuation<Bool, Never>], HandlingReceipt?) = state.withLock { state in
                    if let queued = state.lanes[index].messages.popFirst() {
                        state.lanes[index].bytes -= queued.message.content.readableBytes
                        defer { state.lanes[index].senders = [] }
                        return (.some(queued.message), state.lanes[index].senders, taken(queued, state: &state))
                    }
                    // Checked under the lock: a cancellation after this finds the consumer parked.
                    if state.closed || Task.isCancelled { return (.some(nil), [], nil) }
                    state.lanes[index].consumer = continuation
                    return (.none, [], nil)
                }
                handledNow?.receiverHandled()
                for sender in senders { sender.resume(returning: false) }
                if let result { continuation.resume(returning: result) }
            }
        } onCancel: {
            let parked = state.withLock { state in
                defer { state.lanes[index].consumer = nil }
                return state.lanes[index].consumer
            }
            parked?.resume(returning: nil)
        }
    }

    private func targets(for message: Message, lane: Lane, group: String? = nil) throws -> [BusEndpoint] {
        guard Int(lane.rawValue) < configuration.laneCount else { throw TransportError.unknownLane(lane) }
        guard let bus else { throw BusError.busReleased }
        if let parent = message.header.parentID, let requester = bus.takeRequester(of: parent),
           requester.resolveRequest(parent, with: message) {
            return []
        }
        if let group { return try bus.route(toGroup: group) }
        return try bus.route(message)
    }

    /// Completes a pending request of this endpoint; `false` if none is waiting for `id`.
    private func resolveRequest(_ id: MessageID, with message: Message) -> Bool {
        guard state.withLock({ $0.requests[id] != nil }) else { return false }
        finishRequest(id, with: .success(message))
        return true
    }

    /// Queues `message` unless the lane is full; then a given `waiter` is parked until the
    /// consumer drains (and resumed with `false`, to try again).
    fileprivate func offer(_ message: Message, lane: Lane, receipt: HandlingReceipt?, waiter: UnsafeContinuation<Bool, Never>?) -> TrySendResult {
        let index = Int(lane.rawValue)
        var handledNow: HandlingReceipt?
        let consumer: UnsafeContinuation<Message?, Never>?? = state.withLock { state in
            if state.closed { return .some(nil) }
            if let consumer = state.lanes[index].consumer {
                state.lanes[index].consumer = nil
                handledNow = taken(Queued(message: message, receipt: receipt), state: &state)
                return .some(consumer)
            }
            guard state.lanes[index].bytes < configuration.laneCapacityBytes else {
                if let waiter { state.lanes[index].senders.append(waiter) }
                return .none
            }
            state.lanes[index].messages.append(Queued(message: message, receipt: receipt))
            state.lanes[index].bytes += message.content.readableBytes
            return .some(nil)
        }
        handledNow?.receiverHandled()
        switch consumer {
        case .none: return .wouldBlock
        case .some(let waiting):
            waiting?.resume(returning: message)
            return .accepted
        }
    }

    /// The module takes `queued`: its receipt is either held until ``handled(_:)`` or, returned,
    /// to be completed once the lock is released.
    private func taken(_ queued: Queued, state: inout State) -> HandlingReceipt? {
        guard let receipt = queued.receipt else { return nil }
        guard acknowledgesHandling else { return receipt }
        state.receipts[queued.message.header.id, default: []].append(receipt)
        return nil
    }

    func shutdown() {
        let (consumers, requests) = state.withLock { state in
            state.closed = true
            let consumers = state.lanes.compactMap(\.consumer)
            let senders = state.lanes.flatMap(\.senders)
            for index in state.lanes.indices {
                state.lanes[index].consumer = nil
                state.lanes[index].senders = []
            }
            defer { state.requests = [:]; state.receipts = [:] }
            return ((consumers, senders), Array(state.requests.values))
        }
        for consumer in consumers.0 { consumer.resume(returning: nil) }
        for sender in consumers.1 { sender.resume(returning: true) }
        for request in requests {
            if case .waiting(let continuation) = request { continuation.resume(throwing: TransportError.closed) }
        }
    }
}

/// Counts the modules that still have to handle one message, then calls its sender back.
final class HandlingReceipt: Sendable {
    private let remaining: Mutex<Int>
    private let whenHandled: @Sendable () -> Void

    init(receivers: Int, whenHandled: @escaping @Sendable () -> Void) {
        remaining = Mutex(receivers)
        self.whenHandled = whenHandled
    }

    func receiverHandled() {
        let done = remaining.withLock { remaining in
            remaining -= 1
            return remaining == 0
        }
        if done { whenHandled() }
    }
}
