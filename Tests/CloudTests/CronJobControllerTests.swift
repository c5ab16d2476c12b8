@testable import Cloud
import Foundation
import KubeModel
import Testing
import TestSupport

/// The embedded CronJob controller against a clock the test moves on, checked with kubectl: a
/// Job per scheduled time named by the minute, Forbid and Replace, history limits,
/// lastScheduleTime and lastSuccessfulTime, suspend, and `kubectl create job --from=cronjob/…`.
@Suite(.serialized) struct CronJobControllerTests {
    @Test func aCronJobStartsJobsOnItsScheduleAsItsPoliciesSay() async throws {
        let cluster = try await WorkloadCluster()
        func cronJob(policy: String, outcome: String, suspend: Bool = false) -> String {
            """
            apiVersion: batch/v1
            kind: CronJob
            metadata: {name: tick}
            spec:
              schedule: "*/5 * * * *"
              concurrencyPolicy: \(policy)
              suspend: \(suspend)
              successfulJobsHistoryLimit: 2
              jobTemplate:
                spec:
                  template:
                    metadata: {labels: {outcome: \(outcome), app: tick}}
                    spec: {restartPolicy: Never, containers: [{name: c, image: busybox}]}
            """
        }
        func jobs() async -> [String] {
            await cluster.jsonpath("jobs", "", "{.items[*].metadata.name}").split(separator: " ").map(String.init).sorted()
        }
        /// Moves the clock to the next scheduled time and touches the CronJob, so that the
        /// controller's loop makes a pass (passes never overlap there).
        var ticks = 0
        func tick() async {
            cluster.clock.advance(300)
            ticks += 1
            _ = try? await cluster.kubectl("annotate", "cronjob", "tick", "test/tick=\(ticks)", "--overwrite")
        }
        #expect(try await cluster.kubectl("apply", "-f", "@input", input: cronJob(policy: "Forbid", outcome: "never")).status == 0)
        try await Task.sleep(for: .milliseconds(300))
        #expect(await jobs().isEmpty, "nothing before its first time")
        await tick()
        #expect(await eventually(timeout: .seconds(10)) { await jobs().count == 1 })
        let first = await jobs()[0]
        let minutes = Int(first.dropFirst("tick-".count)) ?? 0
        #expect(minutes % 5 == 0 && first.hasPrefix("tick-"), "\(first)")
        let stamp = await cluster.jsonpath("job", first, "{.metadata.annotations.batch\\.kubernetes\\.io/cronjob-scheduled-timestamp}")
        #expect(try Date(stamp, strategy: .iso8601).timeIntervalSince1970 == Double(minutes * 60), "\(stamp)")
        #expect(await eventually(timeout: .seconds(10)) { await cluster.jsonpath("cronjob", "tick", "{.status.active[0].name}") == first })
        let table = try await cluster.kubectl("get", "cronjob", "tick").output
        #expect(table.contains("LAST SCHEDULE") && table.contains("*/5 * * * *"), "\(table)")

        // Forbid: the next time is skipped while the first Job runs.
        await tick()
        try await Task.sleep(for: .milliseconds(300))
        #expect(await jobs() == [first])
        // Replace: the running Job makes way for the next.
        #expect(try await cluster.kubectl("apply", "-f", "@input", input: cronJob(policy: "Replace", outcome: "never")).status == 0)
        await tick()
        #expect(await eventually(timeout: .seconds(10)) { let now = await jobs(); return now.count == 1 && now != [first] })

        // Allow, with Jobs that succeed: two kept, lastSuccessfulTime set.
        #expect(try await cluster.kubectl("apply", "-f", "@input", input: cronJob(policy: "Allow", outcome: "succeed")).status == 0)
        for _ in 0..<4 {
            await tick()
            // The Job of this time is made and completes.
            let expected = "tick-\(Int(cluster.clock.now.timeIntervalSince1970) / 300 * 5)"
            #expect(await eventually(timeout: .seconds(20)) {
                await cluster.jsonpath("jobs", "", "{.items[?(@.metadata.name==\"\(expected)\")].status.succeeded}") == "1"
            }, "\(expected)")
        }
        let complete = { await cluster.jsonpath("jobs", "", "{.items[?(@.status.succeeded==1)].metadata.name}").split(separator: " ").count }
        #expect(await eventually(timeout: .seconds(20)) { await complete() == 2 })
        #expect(await eventually(timeout: .seconds(10)) { !(await cluster.jsonpath("cronjob", "tick", "{.status.lastSuccessfulTime}")).isEmpty })

        // Suspended: no new Job.
        #expect(try await cluster.kubectl("apply", "-f", "@input", input: cronJob(policy: "Allow", outcome: "succeed", suspend: true)).status == 0)
        try await Task.sleep(for: .milliseconds(300))
        let beforeSuspend = await jobs()
        await tick()
        try await Task.sleep(for: .milliseconds(500))
        #expect(await jobs() == beforeSuspend)

        // A Job made by hand from the CronJob runs too.
        let manual = try await cluster.kubectl("create", "job", "--from=cronjob/tick", "by-hand")
        #expect(manual.status == 0, "\(manual.output)")
        #expect(try await cluster.kubectl("wait", "--for=condition=complete", "job/by-hand", "--timeout=30s").status == 0)
        await cluster.stop()
    }
}
