import EdgeHub
import Testing
import TestSupport
import Transport

/// EdgeHub's reconnect back-off, on a clock the test advances: the real delays (1 s doubling to
/// 30 s) are checked without waiting for them.
@Suite struct ReconnectBackoffTests {
    @Test func anEdgeThatCannotReachTheCloudRetriesOnlyOnceItsBackOffHasPassed() async throws {
        let fixture = try await HubFixture()
        var configuration = fixture.edgeConfiguration("edge-1", token: try fixture.hub.makeToken())
        configuration.httpsPort = 1  // nobody listens: each attempt's certificate request fails at once
        configuration.initialBackoff = .seconds(1)
        configuration.maxBackoff = .seconds(30)
        let clock = ManualClock()
        configuration.clock = clock
        let edge = try EdgeHub(configuration: configuration, bus: MessageBus(), group: testGroup)
        edge.start()
        // Failure n waits min(30 s, 1 s · 2ⁿ), scaled by a random factor in 0.5–1.5.
        for failure in 0..<8 {
            #expect(await eventually { edge.statistics.backoffs == failure + 1 }, "\(edge.statistics)")
            #expect(await clock.waitForSleepers(2), "the back-off and the renewal check sleep on the clock")
            let base = min(Duration.seconds(30), .seconds(1) * (1 << failure))
            clock.advance(by: base * 0.5 - .milliseconds(1))
            #expect(clock.sleeperCount == 2, "failure \(failure + 1) retried before half its delay")
            #expect(edge.statistics.backoffs == failure + 1)
            clock.advance(by: base + .milliseconds(1))
        }
        #expect(await eventually { edge.statistics.backoffs == 9 })
        #expect(edge.lastError != nil)
        await edge.stop()
        await fixture.stop()
    }
}
