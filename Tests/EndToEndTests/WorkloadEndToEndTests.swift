import Foundation
import Synchronization
import Testing
import TestSupport

/// Workloads as a KubeEdge user runs them, with real cloudcore (its embedded API server,
/// scheduler and controllers), two real edgecore processes as nodes and kubectl: a Deployment
/// spread over the edges, scaled, rolled out within maxUnavailable and rolled back; a DaemonSet
/// on exactly the labelled edges; Jobs that complete and fail; an edge that goes away keeps its
/// pods while new ones go elsewhere; and `kubectl drain`.
@Suite(.serialized) struct WorkloadEndToEndTests {
    /// Pod names, node names and ready counts of a selector, as kubectl sees them.
    static func pods(_ selector: String, cloud: CloudCoreProcess) async -> (nodes: [String], ready: Int, running: Int) {
        let output = (try? await cloud.kubectl("get", "pods", "-l", selector, "-o",
                                               #"jsonpath={range .items[*]}{.spec.nodeName}|{.status.phase}|{.status.conditions[?(@.type=="Ready")].status}|{.metadata.deletionTimestamp};{end}"#)) ?? ""
        var nodes: [String] = []
        var ready = 0
        var running = 0
        for line in output.split(separator: ";") {
            let fields = line.split(separator: "|", omittingEmptySubsequences: false).map(String.init)
            guard fields.count == 4, fields[3].isEmpty else { continue }
            nodes.append(fields[0])
            if fields[1] == "Running" { running += 1 }
            if fields[2] == "True" { ready += 1 }
        }
        return (nodes.sorted(), ready, running)
    }

    @Test func deploymentsDaemonSetsAndJobsRunOnRealEdgesAndAnEdgeAwayKeepsItsPods() async throws {
        let cluster = try await EdgeCluster()
        defer { cluster.end() }
        let cloud = cluster.cloud
        _ = try await cluster.addEdge("edge-a", labels: ["site": "a"])
        let edgeB = try await cluster.addEdge("edge-b", labels: ["site": "b", "node-role.kubernetes.io/master": ""])
        for node in ["edge-a", "edge-b"] {
            #expect(await eventually(timeout: .seconds(30)) {
                await cloud.jsonPath("{.status.conditions[?(@.type==\"Ready\")].status}", of: "node", node) == "True"
            }, "\(cloud.log)")
        }
        // What kube-scheduler's filters read of a Node: allocatable CPU, memory, pods and
        // ephemeral storage, the Ready condition, and the kubelet endpoint KubeEdge advertises.
        let reported = await cloud.jsonPath("{.status.allocatable.cpu}|{.status.allocatable.memory}|{.status.allocatable.pods}|{.status.allocatable.ephemeral-storage}|{.status.daemonEndpoints.kubeletEndpoint.Port}",
                                            of: "node", "edge-a") ?? ""
        let fields = reported.split(separator: "|", omittingEmptySubsequences: false)
        #expect(fields.count == 5 && fields.dropLast().allSatisfy { !$0.isEmpty } && fields[2] == "110" && fields[4] == "10350", "\(reported)")
        // keadm join --labels: the labels the edge asked for, not one only the cluster may give.
        #expect(await cloud.jsonPath("{.metadata.labels.site}", of: "node", "edge-b") == "b")
        let edgeBLabels = await cloud.jsonPath("{.metadata.labels}", of: "node", "edge-b") ?? ""
        #expect(!edgeBLabels.contains("node-role.kubernetes.io/master") && edgeBLabels.contains("node-role.kubernetes.io/edge"), "\(edgeBLabels)")

        // A Deployment over both edges, Running as the edges report.
        _ = try await cloud.kubectl("create", "deployment", "web", "--image=busybox", "--replicas=3", "--", "sleep", "3600")
        let status = try await cloud.kubectl("rollout", "status", "deployment/web", "--timeout=90s")
        #expect(status.contains("successfully rolled out"), "\(status)")
        var web = await Self.pods("app=web", cloud: cloud)
        #expect(web.running == 3 && Set(web.nodes) == ["edge-a", "edge-b"], "\(web)")
        _ = try await cloud.kubectl("scale", "deployment", "web", "--replicas=5")
        _ = try await cloud.kubectl("rollout", "status", "deployment/web", "--timeout=90s")
        #expect(await eventually(timeout: .seconds(30)) { await Self.pods("app=web", cloud: cloud).running == 5 })
        _ = try await cloud.kubectl("scale", "deployment", "web", "--replicas=3")
        #expect(await eventually(timeout: .seconds(60)) { await Self.pods("app=web", cloud: cloud).nodes.count == 3 })

        // A rolling update to a new command: never fewer than 3 ready (maxUnavailable 25% of 3 is 0).
        let fewest = Mutex(Int.max)
        let watcher = Task {
            while !Task.isCancelled {
                let ready = await Self.pods("app=web", cloud: cloud).ready
                fewest.withLock { $0 = min($0, ready) }
                try? await Task.sleep(for: .milliseconds(100))
            }
        }
        _ = try await cloud.kubectl("patch", "deployment", "web", "--type=json", "-p",
                                    #"[{"op":"replace","path":"/spec/template/spec/containers/0/command","value":["sleep","3601"]}]"#)
        let rolled = try await cloud.kubectl("rollout", "status", "deployment/web", "--timeout=120s")
        watcher.cancel()
        #expect(rolled.contains("successfully rolled out"), "\(rolled)")
        #expect(fewest.withLock { $0 } >= 3, "ready pods fell to \(fewest.withLock { $0 }) during the rollout")
        let undone = try await cloud.kubectl("rollout", "undo", "deployment/web")
        #expect(undone.contains("rolled back"), "\(undone)")
        _ = try await cloud.kubectl("rollout", "status", "deployment/web", "--timeout=120s")
        #expect(await eventually(timeout: .seconds(30)) {
            let command = await cloud.jsonPath("{.spec.template.spec.containers[0].command[1]}", of: "deployment", "web")
            let ready = await Self.pods("app=web", cloud: cloud).ready
            return command == "3600" && ready == 3
        })

        // A DaemonSet on the edges of site a only; edge-b labelled in gets its pod, labelled out loses it.
        try await cloud.apply("""
            apiVersion: apps/v1
            kind: DaemonSet
            metadata: {name: agent, namespace: default}
            spec:
              selector: {matchLabels: {app: agent}}
              template:
                metadata: {labels: {app: agent}}
                spec:
                  nodeSelector: {site: a}
                  containers: [{name: agent, image: busybox, command: [sleep, "3600"]}]
            """)
        _ = try await cloud.kubectl("rollout", "status", "daemonset/agent", "--timeout=60s")
        #expect(await eventually(timeout: .seconds(30)) { await Self.pods("app=agent", cloud: cloud).nodes == ["edge-a"] })
        _ = try await cloud.kubectl("label", "node", "edge-b", "site=a", "--overwrite")
        #expect(await eventually(timeout: .seconds(30)) {
            let agent = await Self.pods("app=agent", cloud: cloud)
            return agent.nodes == ["edge-a", "edge-b"] && agent.running == 2
        })
        _ = try await cloud.kubectl("label", "node", "edge-b", "site=b", "--overwrite")
        #expect(await eventually(timeout: .seconds(30)) { await Self.pods("app=agent", cloud: cloud).nodes == ["edge-a"] })

        // Jobs: three completions two at a time; a failing one stops at its backoffLimit.
        _ = try await cloud.kubectl("create", "job", "work", "--image=busybox", "--", "true")
        try await cloud.apply("""
            apiVersion: batch/v1
            kind: Job
            metadata: {name: batch, namespace: default}
            spec:
              completions: 3
              parallelism: 2
              template:
                spec: {restartPolicy: Never, containers: [{name: c, image: busybox, command: ["true"]}]}
            ---
            apiVersion: batch/v1
            kind: Job
            metadata: {name: broken, namespace: default}
            spec:
              backoffLimit: 1
              template:
                spec: {restartPolicy: Never, containers: [{name: c, image: busybox, command: ["false"]}]}
            """)
        let completed = try await cloud.kubectl("wait", "--for=condition=complete", "job/batch", "--timeout=90s")
        #expect(completed.contains("condition met"), "\(completed)")
        #expect(await cloud.jsonPath("{.status.succeeded}", of: "job", "batch") == "3")
        let failed = try await cloud.kubectl("wait", "--for=condition=failed", "job/broken", "--timeout=90s")
        #expect(failed.contains("condition met"), "\(failed)")
        #expect(await cloud.jsonPath("{.status.failed}", of: "job", "broken") == "2")

        // edge-b goes away: its pods stay bound (and running there); it is tainted, so new
        // replicas go to edge-a; back, the taint is gone.
        let onB = await Self.pods("app=web", cloud: cloud).nodes.filter { $0 == "edge-b" }.count
        _ = await edgeB.stop()
        #expect(await eventually(timeout: .seconds(30)) {
            await cloud.jsonPath("{.spec.taints[*].key}", of: "node", "edge-b") == "node.kubernetes.io/unreachable"
        })
        _ = try await cloud.kubectl("scale", "deployment", "web", "--replicas=5")
        #expect(await eventually(timeout: .seconds(60)) {
            let now = await Self.pods("app=web", cloud: cloud).nodes
            return now.count == 5 && now.filter { $0 == "edge-b" }.count == onB
        })
        try await edgeB.start()
        #expect(await eventually(timeout: .seconds(30)) { (await cloud.jsonPath("{.spec.taints}", of: "node", "edge-b") ?? "x").isEmpty })
        #expect(await eventually(timeout: .seconds(60)) { await Self.pods("app=web", cloud: cloud).running == 5 })

        // kubectl drain edge-a: the Deployment's pods move to edge-b; the DaemonSet's stays.
        let drained = try await cloud.kubectl("drain", "edge-a", "--ignore-daemonsets", "--timeout=120s")
        #expect(drained.contains("node/edge-a drained"), "\(drained)")
        _ = try await cloud.kubectl("rollout", "status", "deployment/web", "--timeout=120s")
        web = await Self.pods("app=web", cloud: cloud)
        #expect(Set(web.nodes) == ["edge-b"] && web.nodes.count == 5, "\(web)")
        #expect(await Self.pods("app=agent", cloud: cloud).nodes == ["edge-a"])
    }
}
