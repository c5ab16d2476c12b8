import NIOCore
import Testing
@testable import Transport

@Suite struct MessageBusTests {
    @Test func routesByDestinationAndBroadcastsByGroup() async throws {
        let bus = MessageBus()
        let edged = bus.register(module: "edged", group: "edged")
        let meta = bus.register(module: "metaManager", group: "meta")
        let twin = bus.register(module: "twin", group: "twin")
        let twinMirror = bus.register(module: "twinMirror", group: "twin")
        var direct = makeMessage(1)
        direct.router.destination = "metaManager"
        try await edged.send(direct, on: .state, delivery: .reliable)
        var grouped = makeMessage(2)
        grouped.router.destination = ""
        grouped.router.group = "twin"
        try await edged.send(grouped, on: .events, delivery: .reliable)
        #expect(try await collect(1, from: meta, lane: .state).map { index(of: $0) } == [1])
        #expect(try await collect(1, from: twin, lane: .events).map { index(of: $0) } == [2])
        #expect(try await collect(1, from: twinMirror, lane: .events).map { index(of: $0) } == [2])
        var nowhere = makeMessage(3)
        nowhere.router.destination = "nobody"
        await #expect(throws: BusError.unknownDestination("nobody")) { () async throws in
            try await edged.send(nowhere, on: .state, delivery: .reliable)
        }
    }

    @Test func aSenderHearsWhenEveryReceivingModuleHasHandledAMessage() async throws {
        let bus = MessageBus()
        let hub = bus.register(module: "edgehub", group: "hub")
        let meta = bus.register(module: "metaManager", group: "meta", acknowledgesHandling: true)
        let mirror = bus.register(module: "metaMirror", group: "meta")
        let handled = Counter()
        for index in 0..<3 {
            try await hub.send(makeMessage(index), toGroup: "meta", on: .state) { handled.increment() }
        }
        // The mirror takes its copies (handled on taking); MetaManager takes them but has not
        // reported them handled yet.
        _ = try await collect(3, from: mirror, lane: .state)
        let taken = try await collect(3, from: meta, lane: .state)
        try await Task.sleep(for: .milliseconds(20))
        #expect(handled.value == 0)
        meta.handled(taken[1])
        meta.handled(taken[1])
        #expect(handled.value == 1)
        meta.handled(taken[0])
        meta.handled(taken[2])
        #expect(handled.value == 3)
        // A module that leaves before handling never reports: its sender is not told.
        try await hub.send(makeMessage(9), toGroup: "meta", on: .state) { handled.increment() }
        let late = try await collect(1, from: meta, lane: .state)
        bus.unregister(module: "metaManager")
        meta.handled(late[0])
        #expect(handled.value == 3)
    }

    @Test func requestsAreAnsweredThroughTheBus() async throws {
        let bus = MessageBus()
        let client = bus.register(module: "edged", group: "edged")
        let server = bus.register(module: "metaManager", group: "meta")
        let responder = Task {
            for await request in server.messages(on: .request) {
                try await server.respond(to: request, content: ByteBuffer(string: "answer"))
            }
        }
        var query = makeMessage(5)
        query.router.destination = "metaManager"
        let response = try await client.request(query, on: .request, timeout: .seconds(5))
        #expect(String(buffer: response.content) == "answer")
        #expect(response.header.parentID == query.header.id)
        responder.cancel()
        bus.unregister(module: "metaManager")
        var unanswered = makeMessage(6)
        unanswered.router.destination = "edged"  // nobody answers its own requests
        await #expect(throws: TransportError.self) { () async throws in
            _ = try await client.request(unanswered, on: .state, timeout: .milliseconds(100))
        }
    }

    @Test func aFullModuleLaneSuspendsSendersUntilDrained() async throws {
        let bus = MessageBus(configuration: .init(laneCapacityBytes: 10_000))
        let producer = bus.register(module: "producer", group: "p")
        let consumer = bus.register(module: "consumer", group: "c")
        var message = makeMessage(0, size: 1000)
        message.router.destination = "consumer"
        var accepted = 0
        while try producer.trySend(message, on: .events, delivery: .reliable) == .accepted { accepted += 1 }
        #expect(accepted == 10)
        let blocked = Task { try await producer.send(message, on: .events, delivery: .reliable); return true }
        try await Task.sleep(for: .milliseconds(50))
        let drained = try await collect(11, from: consumer, lane: .events)
        #expect(drained.count == 11)
        #expect(try await blocked.value)
    }

    @Test("a module that outlives its bus gets a clear error, not a crash")
    func endpointOutlivingItsBus() async throws {
        var bus: MessageBus? = MessageBus()
        let endpoint = bus!.register(module: "orphan", group: "meta")
        weak let released = bus
        bus = nil
        #expect(released == nil)
        await #expect(throws: BusError.busReleased) {
            try await endpoint.send(makeMessage(1), on: .state, delivery: .reliable)
        }
        #expect(throws: BusError.busReleased) { try endpoint.trySend(makeMessage(2), on: .state, delivery: .reliable) }
        await #expect(throws: BusError.busReleased) { _ = try await endpoint.request(makeMessage(3), on: .request, timeout: .seconds(1)) }
    }
}
