@testable import Cloud
import Foundation
import KubeModel
import Synchronization
import Testing
import TestSupport

/// The embedded Job controller, driven and checked with kubectl and the official Python client:
/// completions with parallelism, a failing Job stopping at its backoffLimit, the active deadline,
/// suspend and resume, and deletion after ttlSecondsAfterFinished. Pods finish as the stand-in
/// kubelet reports them (the end-to-end suite runs Jobs on real edgecore processes).
@Suite(.serialized) struct JobControllerTests {
    private static func job(_ name: String, outcome: String, spec: String) -> String {
        """
        apiVersion: batch/v1
        kind: Job
        metadata: {name: \(name)}
        spec:
        \(spec.split(separator: "\n").map { "  " + $0 }.joined(separator: "\n"))
          template:
            metadata: {labels: {outcome: \(outcome)}}
            spec: {restartPolicy: Never, containers: [{name: c, image: busybox, command: ["true"]}]}
        """
    }

    @Test func aJobCompletesItsCompletionsWithinParallelismAndAFailingOneStopsAtItsBackoffLimit() async throws {
        let cluster = try await WorkloadCluster()
        // At most two at a time, three in all.
        let peak = Mutex(0)
        let watcher = Task {
            while !Task.isCancelled {
                if let pods = try? await cluster.pods("job-name=work") { peak.withLock { $0 = max($0, pods.ready) } }
                try? await Task.sleep(for: .milliseconds(20))
            }
        }
        #expect(try await cluster.kubectl("apply", "-f", "@input", input: Self.job("work", outcome: "succeed", spec: "completions: 3\nparallelism: 2")).status == 0)
        let waited = try await cluster.kubectl("wait", "--for=condition=complete", "job/work", "--timeout=60s")
        watcher.cancel()
        #expect(waited.status == 0, "\(waited.output)")
        let counts = await cluster.jsonpath("job", "work", "{.status.succeeded}/{.status.failed}/{.status.active}")
        #expect(counts == "3/0/0", "\(counts)")
        #expect(peak.withLock { $0 } <= 2)
        let table = try await cluster.kubectl("get", "job", "work").output
        #expect(table.contains("Complete") && table.contains("3/3"), "\(table)")
        // Counted once: no pod keeps the tracking finalizer, none is left uncounted.
        #expect(await cluster.jsonpath("pods", "", "{.items[*].metadata.finalizers}").isEmpty)
        #expect(await cluster.jsonpath("job", "work", "{.status.uncountedTerminatedPods.succeeded}") .isEmpty)

        // backoffLimit 2: three failed pods, then Failed, with kube's reason.
        #expect(try await cluster.kubectl("apply", "-f", "@input", input: Self.job("broken", outcome: "fail", spec: "backoffLimit: 2")).status == 0)
        let failed = try await cluster.kubectl("wait", "--for=condition=failed", "job/broken", "--timeout=60s")
        #expect(failed.status == 0, "\(failed.output)")
        #expect(await cluster.jsonpath("job", "broken", "{.status.failed}") == "3")
        #expect(await cluster.jsonpath("job", "broken", "{.status.conditions[?(@.type==\"Failed\")].reason}") == "BackoffLimitExceeded")
        try await Task.sleep(for: .milliseconds(500))
        #expect(try await cluster.pods("job-name=broken").total == 3, "no pod after the limit")

        // The official Python client reads the outcome.
        let python = try await runProcessOffPool("/usr/bin/env", ["python3", "-c", """
            import sys
            from kubernetes import client, config
            config.load_kube_config(config_file=sys.argv[1])
            batch = client.BatchV1Api()
            for name in ("work", "broken"):
                s = batch.read_namespaced_job_status(name, "default").status
                print(name, s.succeeded, s.failed, sorted(c.type for c in s.conditions if c.status == "True"), s.completion_time is not None)
            """, cluster.server.directory + "/kubeconfig"])
        #expect(python.output.contains("work 3 0 ['Complete', 'SuccessCriteriaMet'] True")
                && python.output.contains("broken None 3 ['Failed', 'FailureTarget'] False") || python.output.contains("broken 0 3 ['Failed', 'FailureTarget'] False"),
                "\(python.output)")
        await cluster.stop()
    }

    @Test func aDeadlineStopsAJobSuspendStopsItsPodsAndAFinishedJobExpires() async throws {
        let cluster = try await WorkloadCluster()
        // Pods that never finish: the deadline fails the Job and stops them.
        #expect(try await cluster.kubectl("apply", "-f", "@input", input: Self.job("slow", outcome: "never", spec: "activeDeadlineSeconds: 2")).status == 0)
        #expect(await eventually(timeout: .seconds(10)) { (try? await cluster.pods("job-name=slow"))?.ready == 1 })
        let failed = try await cluster.kubectl("wait", "--for=condition=failed", "job/slow", "--timeout=30s")
        #expect(failed.status == 0, "\(failed.output)")
        #expect(await cluster.jsonpath("job", "slow", "{.status.conditions[?(@.type==\"Failed\")].reason}") == "DeadlineExceeded")
        #expect(await eventually(timeout: .seconds(10)) { (try? await cluster.pods("job-name=slow"))?.total == 0 })

        // Suspended: its pod goes; resumed: it runs to completion.
        #expect(try await cluster.kubectl("apply", "-f", "@input", input: Self.job("later", outcome: "never", spec: "suspend: false")).status == 0)
        #expect(await eventually(timeout: .seconds(10)) { (try? await cluster.pods("job-name=later"))?.ready == 1 })
        #expect(try await cluster.kubectl("patch", "job", "later", "--type=merge", "-p", #"{"spec":{"suspend":true}}"#).status == 0)
        #expect(await eventually(timeout: .seconds(10)) { (try? await cluster.pods("job-name=later"))?.total == 0 })
        #expect(await cluster.jsonpath("job", "later", "{.status.conditions[?(@.type==\"Suspended\")].status}") == "True")
        let resumed = try await cluster.kubectl("patch", "job", "later", "--type=merge", "-p", #"{"spec":{"suspend":false}}"#)
        #expect(resumed.status == 0, "\(resumed.output)")
        #expect(await eventually(timeout: .seconds(10)) { (try? await cluster.pods("job-name=later"))?.ready == 1 })
        #expect(await cluster.jsonpath("job", "later", "{.status.conditions[?(@.type==\"Suspended\")].status}") == "False")

        // ttlSecondsAfterFinished: the Job and its pods go after it (5 s, so that `kubectl wait`
        // still finds the Job complete on a loaded machine; a deleted Job is "not found").
        #expect(try await cluster.kubectl("apply", "-f", "@input", input: Self.job("brief", outcome: "succeed", spec: "ttlSecondsAfterFinished: 5")).status == 0)
        let briefDone = try await cluster.kubectl("wait", "--for=condition=complete", "job/brief", "--timeout=30s")
        let briefState = await cluster.jsonpath("job", "brief", "{.status}") + " pods: "
            + (await cluster.jsonpath("pods", "", "{range .items[*]}{.metadata.name} {.status.phase} {.metadata.finalizers} {.metadata.deletionTimestamp};{end}"))
        #expect(briefDone.status == 0, "\(briefDone.output) \(briefState)")
        #expect(await eventually(timeout: .seconds(15)) { (try? await cluster.kubectl("get", "job", "brief"))?.output.contains("NotFound") == true })
        #expect(await eventually(timeout: .seconds(10)) { (try? await cluster.pods("job-name=brief"))?.total == 0 })

        // A running Job deleted: its pods go too (their tracking finalizer is taken off).
        #expect(try await cluster.kubectl("delete", "job", "later").status == 0)
        #expect(await eventually(timeout: .seconds(15)) { (try? await cluster.pods("job-name=later"))?.total == 0 })
        await cluster.stop()
    }
}
