import NIOCore
import Testing
@testable import Transport

/// The channel over QUIC through a relay that drops, duplicates and reorders datagrams: every
/// message arrives, once, in order per lane, at loss rates from 0 to 30 %.
@Suite(.serialized) struct QUICLossTests {
    static let rates: [Double] = [0, 0.05, 0.15, 0.30]

    @Test(arguments: rates)
    func everyMessageArrivesInOrderPerLane(drop: Double) async throws {
        let impairment = LossyUDPRelay.Impairment(drop: drop, duplicate: drop / 3, reorder: drop / 2, seed: UInt64.random(in: 0 ... .max))
        let pair = try await ChannelPair(backend: .quic)
        let relay = try await LossyUDPRelay.start(to: try SocketAddress(ipAddress: "127.0.0.1", port: pair.quicPort!), impairment: impairment)
        try await pair.connect(throughPort: relay.port)
        let count = drop >= 0.3 ? 300 : 600
        async let state = collect(count, from: pair.cloud, lane: .state, timeout: .seconds(90))
        async let events = collect(count, from: pair.cloud, lane: .events, timeout: .seconds(90))
        async let bulk = collect(count / 10, from: pair.cloud, lane: .bulk, timeout: .seconds(90))
        for index in 0..<count {
            try await pair.edge.send(makeMessage(index), on: .state, delivery: .reliable)
            try await pair.edge.send(makeMessage(index, size: 700), on: .events, delivery: .bestEffort)
            if index % 10 == 0 { try await pair.edge.send(makeMessage(index / 10, size: 20_000), on: .bulk, delivery: .reliable) }
        }
        #expect(try await state.map { index(of: $0) } == Array(0..<count), "\(impairment)")
        #expect(try await events.map { index(of: $0) } == Array(0..<count), "\(impairment)")
        #expect(try await bulk.map { index(of: $0) } == Array(0..<(count / 10)), "\(impairment)")
        #expect(pair.cloud.counters.duplicatesDropped == 0, "QUIC hands each stream byte over once")
        let counts = relay.counts
        if drop > 0 {
            #expect(counts.dropped > 0 && counts.duplicated > 0 && counts.reordered > 0, "the relay impaired nothing: \(counts)")
        }
        await pair.shutdown()
        await relay.stop()
    }
}
