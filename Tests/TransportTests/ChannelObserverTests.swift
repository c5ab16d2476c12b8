import NIOConcurrencyHelpers
import NIOCore
import Testing
@testable import Transport

/// Records what a channel tells its observer.
final class RecordingObserver: MessageChannelObserver {
    enum Event: Equatable { case connected, disconnected, messages(Lane) }
    private let recorded = NIOLockedValueBox<[Event]>([])

    var events: [Event] { recorded.withLockedValue { $0 } }
    var connectionEvents: [Event] { events.filter { $0 == .connected || $0 == .disconnected } }

    func channelConnected(_ channel: MessageChannel) { recorded.withLockedValue { $0.append(.connected) } }
    func channelDisconnected(_ channel: MessageChannel) { recorded.withLockedValue { $0.append(.disconnected) } }
    func channel(_ channel: MessageChannel, hasMessagesOn lane: Lane) { recorded.withLockedValue { $0.append(.messages(lane)) } }
}

@Suite("Channel observer and polling", .serialized)
struct ChannelObserverTests {
    @Test("connect, arrivals, polling and disconnect reach the observer", arguments: [Backend.local, .webSocket])
    func observedLifecycle(backend: Backend) async throws {
        let pair = try await ChannelPair(backend: backend)
        let observer = RecordingObserver()
        pair.cloud.setObserver(observer)
        try await pair.connect()
        #expect(await eventually { observer.connectionEvents == [.connected] })

        try await pair.edge.send(contentsOf: (0..<50).map { makeMessage($0) }, on: .state, delivery: .reliable)
        #expect(await eventually { observer.events.contains(.messages(.state)) })
        var polled: [String] = []
        while polled.count < 50 {
            if let message = pair.cloud.pollMessage(on: .state) {
                polled.append(String(buffer: message.content))
            } else {
                try await Task.sleep(for: .milliseconds(1))
            }
        }
        #expect(polled == (0..<50).map { "m\($0)" })
        #expect(pair.cloud.pollMessage(on: .state) == nil)
        // Every message was acknowledged although no task iterated the lane.
        #expect(await eventually { pair.edge.statistics(for: .state).unacknowledged == 0 })

        // The lane is empty again, so the next arrival is announced again.
        let announcedBefore = observer.events.filter { $0 == .messages(.state) }.count
        try await pair.edge.send(makeMessage(99), on: .state, delivery: .reliable)
        #expect(await eventually { observer.events.filter { $0 == .messages(.state) }.count == announcedBefore + 1 })
        #expect(pair.cloud.pollMessage(on: .state).map { String(buffer: $0.content) } == "m99")

        await pair.disconnect()
        #expect(await eventually { observer.connectionEvents == [.connected, .disconnected] })
        try await pair.connect()
        #expect(await eventually { observer.connectionEvents == [.connected, .disconnected, .connected] })
        await pair.shutdown()
        #expect(observer.connectionEvents == [.connected, .disconnected, .connected, .disconnected])
    }

    @Test("an observer set late hears of a live connection and of buffered messages")
    func lateObserver() async throws {
        let pair = try await ChannelPair(backend: .local)
        try await pair.connect()
        try await pair.edge.send(makeMessage(1), on: .events, delivery: .reliable)
        #expect(await eventually { pair.cloud.statistics(for: .events).bufferedBytes > 0 })
        let observer = RecordingObserver()
        pair.cloud.setObserver(observer)
        #expect(observer.events == [.connected, .messages(.events)])
        await pair.shutdown()
    }
}
