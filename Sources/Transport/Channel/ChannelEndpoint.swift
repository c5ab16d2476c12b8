import NIOCore

/// The contract every module sends and receives through, whatever carries the bytes: a
/// ``MessageChannel`` over WebSocket or QUIC, or a ``MessageBus`` endpoint in-process.
public protocol ChannelEndpoint: Sendable {
    /// Sends `message` on `lane`; suspends while the lane's credit or the outbox bound is
    /// exhausted. A reliable message is in the outbox when this returns.
    func send(_ message: Message, on lane: Lane, delivery: Delivery) async throws
    /// Sends without waiting: queues, drops (best effort while disconnected) or refuses.
    func trySend(_ message: Message, on lane: Lane, delivery: Delivery) throws -> TrySendResult
    /// The messages arriving on `lane`, in order. Consuming them grants the sender credit.
    func messages(on lane: Lane) -> LaneMessages
    /// Sends `message` as a request (`sync`) and waits for the message whose `parentID` is its id.
    func request(_ message: Message, on lane: Lane, timeout: Duration?) async throws -> Message
}

extension ChannelEndpoint {
    /// Answers `request` with `content` on the same lane, reliably.
    public func respond(to request: Message, content: ByteBuffer, on lane: Lane = .request) async throws {
        try await send(request.makeResponse(content: content), on: lane, delivery: .reliable)
    }
}

/// The messages of one lane as an `AsyncSequence`. Iterate it from one task; the sequence ends
/// when its channel is closed.
public struct LaneMessages: AsyncSequence, Sendable {
    public typealias Element = Message
    let source: any LaneSource
    let lane: Lane

    public func makeAsyncIterator() -> Iterator { Iterator(source: source, lane: lane) }

    /// Returns the next message, suspending until one arrives; `nil` once the channel closed.
    public struct Iterator: AsyncIteratorProtocol {
        let source: any LaneSource
        let lane: Lane

        public mutating func next() async -> Message? { await source.nextMessage(on: lane) }
        public mutating func next(isolation actor: isolated (any Actor)?) async -> Message? {
            await source.nextMessage(on: lane)
        }
    }
}

/// Where ``LaneMessages`` pulls from.
protocol LaneSource: Sendable {
    func nextMessage(on lane: Lane) async -> Message?
}
