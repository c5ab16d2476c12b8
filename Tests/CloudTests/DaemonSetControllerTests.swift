@testable import Cloud
import Foundation
import KubeModel
import Synchronization
import Testing
import TestSupport

/// The embedded DaemonSet controller with the scheduler, driven and checked with kubectl: one
/// pod on each matching node and none elsewhere, a node labelled in later gets its pod and one
/// labelled out loses it, cordoned and tainted nodes as kube treats them, a rolling update that
/// keeps within maxUnavailable, history and undo through ControllerRevisions, and OnDelete.
@Suite(.serialized) struct DaemonSetControllerTests {
    @Test func aDaemonSetRunsOnExactlyTheMatchingNodesFollowsLabelsRollsOutAndRollsBack() async throws {
        let cluster = try await WorkloadCluster(scheduler: true)
        try await cluster.addNode("edge-1", labels: "node-role.kubernetes.io/edge: \"\"")
        try await cluster.addNode("edge-2", labels: "node-role.kubernetes.io/edge: \"\"")
        try await cluster.addNode("cloud-1")
        let applied = try await cluster.kubectl("apply", "-f", "@input", input: """
            apiVersion: apps/v1
            kind: DaemonSet
            metadata: {name: agent}
            spec:
              selector: {matchLabels: {app: agent}}
              template:
                metadata: {labels: {app: agent}}
                spec:
                  nodeSelector: {node-role.kubernetes.io/edge: ""}
                  containers: [{name: agent, image: "agent:1"}]
            """)
        #expect(applied.status == 0, "\(applied.output)")
        let status = try await cluster.rolloutStatus("agent", kind: "daemonset")
        #expect(status.status == 0 && status.output.contains("daemon set \"agent\" successfully rolled out"), "\(status.output)")
        #expect(try await cluster.pods("app=agent").nodes == ["edge-1", "edge-2"])
        let table = try await cluster.kubectl("get", "daemonset", "agent").output
        let row = table.split(separator: "\n").last?.split(separator: " ", omittingEmptySubsequences: true).prefix(6).joined(separator: " ")
        #expect(table.contains("NODE SELECTOR") && row == "agent 2 2 2 2 2", "\(table)")
        // The pods carry kube's tolerations and are pinned by node affinity, not by nodeName.
        let pod = try await cluster.kubectl("get", "pods", "-l", "app=agent", "-o",
                                            "jsonpath={.items[0].spec.tolerations[*].key}|{.items[0].spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchFields[0].key}")
        #expect(pod.output.contains("node.kubernetes.io/unreachable") && pod.output.contains("node.kubernetes.io/unschedulable")
                && pod.output.hasSuffix("|metadata.name"), "\(pod.output)")

        // A node that joins later gets its pod; one labelled out loses it; a cordoned node keeps and gets its pod.
        try await cluster.addNode("edge-3", labels: "node-role.kubernetes.io/edge: \"\"")
        #expect(await eventually(timeout: .seconds(20)) { (try? await cluster.pods("app=agent").nodes) == ["edge-1", "edge-2", "edge-3"] })
        #expect(try await cluster.kubectl("label", "node", "edge-2", "node-role.kubernetes.io/edge-").status == 0)
        #expect(await eventually(timeout: .seconds(20)) { (try? await cluster.pods("app=agent").nodes) == ["edge-1", "edge-3"] })
        #expect(try await cluster.kubectl("cordon", "edge-3").status == 0)
        #expect(try await cluster.kubectl("label", "node", "edge-2", "node-role.kubernetes.io/edge=").status == 0)
        #expect(await eventually(timeout: .seconds(20)) { (try? await cluster.pods("app=agent").nodes) == ["edge-1", "edge-2", "edge-3"] })
        // A NoExecute taint it does not tolerate takes the pod away.
        #expect(try await cluster.kubectl("taint", "node", "edge-1", "maintenance=now:NoExecute").status == 0)
        #expect(await eventually(timeout: .seconds(20)) { (try? await cluster.pods("app=agent").nodes) == ["edge-2", "edge-3"] })
        #expect(try await cluster.kubectl("taint", "node", "edge-1", "maintenance=now:NoExecute-").status == 0)
        #expect(try await cluster.rolloutStatus("agent", kind: "daemonset").status == 0)

        // A rolling update: one node at a time (maxUnavailable 1).
        let worst = Mutex(Int.max)
        let watcher = Task {
            while !Task.isCancelled {
                if let pods = try? await cluster.pods("app=agent") { worst.withLock { $0 = min($0, pods.ready) } }
                try? await Task.sleep(for: .milliseconds(20))
            }
        }
        #expect(try await cluster.kubectl("set", "image", "daemonset/agent", "agent=agent:2").status == 0)
        let rolled = try await cluster.rolloutStatus("agent", kind: "daemonset")
        watcher.cancel()
        #expect(rolled.status == 0, "\(rolled.output)")
        #expect(await eventually(timeout: .seconds(20)) { (try? await cluster.pods("app=agent"))?.images == ["agent:2"] })
        #expect(worst.withLock { $0 } >= 2, "at most one of three nodes without a ready pod")

        // History and undo through ControllerRevisions.
        let history = try await cluster.kubectl("rollout", "history", "daemonset/agent").output
        #expect(history.contains("REVISION") && history.contains("1 ") && history.contains("2 "), "\(history)")
        let undo = try await cluster.kubectl("rollout", "undo", "daemonset/agent")
        #expect(undo.status == 0 && undo.output.contains("rolled back"), "\(undo.output)")
        #expect(try await cluster.rolloutStatus("agent", kind: "daemonset").status == 0)
        #expect(await eventually(timeout: .seconds(20)) { (try? await cluster.pods("app=agent"))?.images == ["agent:1"] })
        let revisions = try await cluster.kubectl("get", "controllerrevisions", "-o", "jsonpath={range .items[*]}{.revision}:{.data.spec.template.spec.containers[0].image};{end}").output
        #expect(revisions.split(separator: ";").sorted() == ["2:agent:2", "3:agent:1"], "\(revisions)")

        // Deleting the DaemonSet takes its pods and revisions.
        #expect(try await cluster.kubectl("delete", "daemonset", "agent").status == 0)
        #expect(await eventually(timeout: .seconds(20)) { (try? await cluster.pods("app=agent").total) == 0 })
        #expect(await eventually(timeout: .seconds(10)) { await cluster.jsonpath("controllerrevisions", "", "{.items[*].metadata.name}").isEmpty })
        await cluster.stop()
    }

    @Test func onDeleteReplacesAPodOnlyWhenItIsDeleted() async throws {
        let cluster = try await WorkloadCluster(scheduler: true)
        try await cluster.addNode("n1")
        try await cluster.addNode("n2")
        let applied = try await cluster.kubectl("apply", "-f", "@input", input: """
            apiVersion: apps/v1
            kind: DaemonSet
            metadata: {name: logs}
            spec:
              updateStrategy: {type: OnDelete}
              selector: {matchLabels: {app: logs}}
              template:
                metadata: {labels: {app: logs}}
                spec: {containers: [{name: logs, image: "logs:1"}]}
            """)
        #expect(applied.status == 0, "\(applied.output)")
        #expect(await eventually(timeout: .seconds(20)) { (try? await cluster.pods("app=logs"))?.ready == 2 })
        #expect(try await cluster.kubectl("set", "image", "daemonset/logs", "logs=logs:2").status == 0)
        try await Task.sleep(for: .seconds(1))
        #expect(try await cluster.pods("app=logs").images == ["logs:1"])
        #expect(await eventually(timeout: .seconds(10)) {
            await cluster.jsonpath("daemonset", "logs", "{.status.updatedNumberScheduled}/{.status.desiredNumberScheduled}") == "0/2"
        })
        let onFirst = await cluster.jsonpath("pods", "", "{.items[?(@.spec.nodeName==\"n1\")].metadata.name}")
        #expect(try await cluster.kubectl("delete", "pod", onFirst).status == 0)
        #expect(await eventually(timeout: .seconds(20)) { (try? await cluster.pods("app=logs"))?.images == ["logs:1", "logs:2"] })
        #expect(await eventually(timeout: .seconds(10)) {
            await cluster.jsonpath("daemonset", "logs", "{.status.updatedNumberScheduled}/{.status.desiredNumberScheduled}") == "1/2"
        })
        await cluster.stop()
    }

    @Test func kubectlDrainEvictsTheDeploymentsPodsAndLeavesTheDaemonSets() async throws {
        let cluster = try await WorkloadCluster(scheduler: true)
        try await cluster.addNode("n1")
        try await cluster.addNode("n2")
        #expect(try await cluster.kubectl("create", "deployment", "web", "--image=busybox", "--replicas=4").status == 0)
        let applied = try await cluster.kubectl("apply", "-f", "@input", input: """
            apiVersion: apps/v1
            kind: DaemonSet
            metadata: {name: agent}
            spec:
              selector: {matchLabels: {app: agent}}
              template:
                metadata: {labels: {app: agent}}
                spec: {containers: [{name: agent, image: agent}]}
            """)
        #expect(applied.status == 0, "\(applied.output)")
        #expect(try await cluster.rolloutStatus("web").status == 0)
        #expect(try await cluster.rolloutStatus("agent", kind: "daemonset").status == 0)
        #expect(Set(try await cluster.pods("app=web").nodes) == ["n1", "n2"], "spread over both nodes")

        let drained = try await cluster.kubectl("drain", "n1", "--ignore-daemonsets", "--timeout=60s")
        #expect(drained.status == 0 && drained.output.contains("evicting pod") && drained.output.contains("node/n1 drained"), "\(drained.output)")
        #expect(await cluster.jsonpath("node", "n1", "{.spec.unschedulable}") == "true")
        #expect(try await cluster.rolloutStatus("web").status == 0)
        #expect(try await cluster.pods("app=web").nodes == ["n2", "n2", "n2", "n2"])
        #expect(try await cluster.pods("app=agent").nodes == ["n1", "n2"], "the DaemonSet's pod stays")

        // The official Python client evicts too (policy/v1 Eviction).
        let victim = await cluster.jsonpath("pods", "", "{.items[?(@.metadata.labels.app==\"web\")].metadata.name}").split(separator: " ").first.map(String.init) ?? ""
        let python = try await runProcessOffPool("/usr/bin/env", ["python3", "-c", """
            import sys
            from kubernetes import client, config
            config.load_kube_config(config_file=sys.argv[1])
            body = client.V1Eviction(metadata=client.V1ObjectMeta(name=sys.argv[2], namespace="default"))
            client.CoreV1Api().create_namespaced_pod_eviction(sys.argv[2], "default", body)
            print("evicted")
            """, cluster.server.directory + "/kubeconfig", victim])
        #expect(python.output.contains("evicted"), "\(python.output)")
        // Evictions that cannot be: kube-apiserver's codes, reasons and messages.
        let survivor = await cluster.jsonpath("pods", "", "{.items[?(@.metadata.labels.app==\"agent\")].metadata.name}").split(separator: " ").first.map(String.init) ?? ""
        let refused = try await runProcessOffPool("/usr/bin/env", ["python3", "-c", """
            import sys
            from kubernetes import client, config
            from kubernetes.client.rest import ApiException
            config.load_kube_config(config_file=sys.argv[1])
            api = client.CoreV1Api()
            def attempt(label, pod, body):
                try:
                    api.create_namespaced_pod_eviction(pod, "default", body)
                    print(label, "accepted")
                except ApiException as error:
                    import json
                    status = json.loads(error.body)
                    print(label, error.status, status.get("reason"), status.get("message"))
            attempt("absent", "no-such-pod", client.V1Eviction(metadata=client.V1ObjectMeta(name="no-such-pod")))
            attempt("renamed", sys.argv[2], client.V1Eviction(metadata=client.V1ObjectMeta(name="another")))
            attempt("stale", sys.argv[2], client.V1Eviction(metadata=client.V1ObjectMeta(name=sys.argv[2]),
                delete_options=client.V1DeleteOptions(preconditions=client.V1Preconditions(uid="00000000-0000-0000-0000-000000000000"))))
            """, cluster.server.directory + "/kubeconfig", survivor])
        #expect(refused.output.contains(#"absent 404 NotFound pods "no-such-pod" not found"#), "\(refused.output)")
        #expect(refused.output.contains("renamed 400 BadRequest name in URL does not match name in Eviction object"), "\(refused.output)")
        #expect(refused.output.contains("stale 409 Conflict Precondition failed: UID in precondition: 00000000-0000-0000-0000-000000000000"), "\(refused.output)")
        let read = try await cluster.kubectl("get", "--raw", "/api/v1/namespaces/default/pods/\(survivor)/eviction")
        #expect(read.status != 0 && read.output.contains("the server does not allow this method on the requested resource"), "\(read.output)")
        try "{not json".write(toFile: cluster.server.directory + "/garbage.json", atomically: true, encoding: .utf8)
        let garbage = try await cluster.kubectl("create", "--raw", "/api/v1/namespaces/default/pods/\(survivor)/eviction", "-f", cluster.server.directory + "/garbage.json")
        #expect(garbage.status != 0 && garbage.output.contains("(BadRequest)"), "\(garbage.output)")
        #expect(try await cluster.pods("app=agent").total == 2, "nothing refused was evicted")
        #expect(await eventually(timeout: .seconds(20)) {
            let names = await cluster.jsonpath("pods", "", "{.items[*].metadata.name}")
            return (try? await cluster.pods("app=web"))?.total == 4 && !names.contains(victim)
        })
        #expect(try await cluster.kubectl("uncordon", "n1").status == 0)
        await cluster.stop()
    }
}
