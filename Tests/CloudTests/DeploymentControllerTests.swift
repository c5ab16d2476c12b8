@testable import Cloud
import Foundation
import KubeModel
import Synchronization
import Testing
import TestSupport

/// The embedded Deployment controller with the ReplicaSet controller, as the controller
/// manager's user, driven and checked with kubectl and the official Python client: create,
/// rollout status, scale, rolling update within maxSurge and maxUnavailable, history, undo,
/// pause and resume, restart, Recreate, history limit and the progress deadline. No edge runs
/// here: a stand-in for kubelet marks the pods it sees Running and Ready (the end-to-end suite
/// runs Deployments on real edgecore processes).
@Suite(.serialized) struct DeploymentControllerTests {
    @Test func kubectlCreatesScalesRollsOutUndoesPausesAndRestartsADeployment() async throws {
        let cluster = try await WorkloadCluster()
        #expect(try await cluster.kubectl("auth", "can-i", "create", "replicasets", "--as=system:kube-controller-manager").output.hasPrefix("yes"))
        #expect(try await cluster.kubectl("auth", "can-i", "delete", "deployments", "--as=system:kube-controller-manager").output.hasPrefix("no"))

        let created = try await cluster.kubectl("create", "deployment", "web", "--image=busybox", "--replicas=3", "--", "sleep", "3600")
        #expect(created.status == 0, "\(created.output)")
        let status = try await cluster.rolloutStatus("web")
        #expect(status.status == 0 && status.output.contains("deployment \"web\" successfully rolled out"), "\(status.output)")
        let table = try await cluster.kubectl("get", "deployment", "web").output
        let row = table.split(separator: "\n").last?.split(separator: " ", omittingEmptySubsequences: true).prefix(4).joined(separator: " ")
        #expect(table.contains("READY") && table.contains("UP-TO-DATE") && row == "web 3/3 3 3", "\(table)")
        let firstReplicaSet = await cluster.jsonpath("rs", "", "{.items[0].metadata.name}")
        let hash = await cluster.jsonpath("rs", firstReplicaSet, "{.metadata.labels.pod-template-hash}")
        #expect(firstReplicaSet == "web-" + hash && !hash.isEmpty, "\(firstReplicaSet)")
        #expect(await cluster.jsonpath("deployment", "web", "{.metadata.annotations.deployment\\.kubernetes\\.io/revision}") == "1")
        #expect(await cluster.jsonpath("rs", firstReplicaSet, "{.metadata.annotations.deployment\\.kubernetes\\.io/revision}") == "1")
        #expect(try await cluster.pods("app=web,pod-template-hash=" + hash).total == 3)
        let conditions = await cluster.jsonpath("deployment", "web", "{range .status.conditions[*]}{.type}={.status}/{.reason};{end}")
        #expect(conditions.contains("Available=True/MinimumReplicasAvailable") && conditions.contains("Progressing=True/NewReplicaSetAvailable"),
                "\(conditions)")

        // Scale up and back down.
        #expect(try await cluster.kubectl("scale", "deployment", "web", "--replicas=5").status == 0)
        #expect(try await cluster.rolloutStatus("web").status == 0)
        #expect(try await cluster.pods("app=web").ready == 5)
        #expect(try await cluster.kubectl("scale", "deployment", "web", "--replicas=3").status == 0)
        #expect(await eventually(timeout: .seconds(20)) { (try? await cluster.pods("app=web").total) == 3 })

        // A rolling update: maxSurge 1, maxUnavailable 0 (25% of 3): never fewer than 3 ready, never more than 4 pods.
        let extremes = Mutex((minimumReady: Int.max, maximumPods: 0))
        let watcher = Task {
            while !Task.isCancelled {
                if let pods = try? await cluster.pods("app=web") {
                    extremes.withLock { $0 = (min($0.minimumReady, pods.ready), max($0.maximumPods, pods.total)) }
                }
                try? await Task.sleep(for: .milliseconds(20))
            }
        }
        #expect(try await cluster.kubectl("set", "image", "deployment/web", "busybox=busybox:1.36").status == 0)
        let rolled = try await cluster.rolloutStatus("web")
        watcher.cancel()
        #expect(rolled.status == 0, "\(rolled.output)")
        #expect(await eventually(timeout: .seconds(20)) { (try? await cluster.pods("app=web"))?.images == ["busybox:1.36"] })
        let seen = extremes.withLock { $0 }
        #expect(seen.minimumReady >= 3 && seen.maximumPods <= 4, "\(seen)")
        let events = try await cluster.kubectl("get", "events", "--field-selector", "involvedObject.name=web", "-o", "jsonpath={.items[*].message}").output
        #expect(events.contains("Scaled up replica set web-") && events.contains("Scaled down replica set \(firstReplicaSet) from 3 to 2"), "\(events)")

        // History and undo.
        let history = try await cluster.kubectl("rollout", "history", "deployment/web").output
        #expect(history.contains("REVISION") && history.contains("1 ") && history.contains("2 "), "\(history)")
        let undo = try await cluster.kubectl("rollout", "undo", "deployment/web")
        #expect(undo.status == 0 && undo.output.contains("rolled back"), "\(undo.output)")
        #expect(try await cluster.rolloutStatus("web").status == 0)
        #expect(await eventually(timeout: .seconds(20)) { (try? await cluster.pods("app=web"))?.images == ["busybox"] })
        #expect(await cluster.jsonpath("rs", firstReplicaSet, "{.metadata.annotations.deployment\\.kubernetes\\.io/revision}") == "3")
        #expect(await cluster.jsonpath("rs", firstReplicaSet, "{.metadata.annotations.deployment\\.kubernetes\\.io/revision-history}") == "1")
        #expect(await cluster.jsonpath("deployment", "web", "{.metadata.annotations.deployment\\.kubernetes\\.io/revision}") == "3")

        // Paused: a template change makes no ReplicaSet until resumed.
        #expect(try await cluster.kubectl("rollout", "pause", "deployment/web").status == 0)
        #expect(await eventually(timeout: .seconds(10)) {
            await cluster.jsonpath("deployment", "web", "{.status.conditions[?(@.type==\"Progressing\")].reason}") == "DeploymentPaused"
        })
        #expect(try await cluster.kubectl("set", "image", "deployment/web", "busybox=busybox:1.37").status == 0)
        try await Task.sleep(for: .seconds(1))
        #expect(await cluster.jsonpath("rs", "", "{.items[*].metadata.name}").split(separator: " ").count == 2)
        let refused = try await cluster.kubectl("rollout", "undo", "deployment/web")
        #expect(refused.status != 0 && refused.output.contains("paused"), "\(refused.output)")
        #expect(try await cluster.kubectl("rollout", "resume", "deployment/web").status == 0)
        #expect(try await cluster.rolloutStatus("web").status == 0)
        #expect(await eventually(timeout: .seconds(20)) { (try? await cluster.pods("app=web"))?.images == ["busybox:1.37"] })

        // Restart: the same image, a new ReplicaSet.
        let before = await cluster.jsonpath("rs", "", "{.items[*].metadata.name}")
        #expect(try await cluster.kubectl("rollout", "restart", "deployment/web").status == 0)
        #expect(try await cluster.rolloutStatus("web").status == 0)
        let after = await cluster.jsonpath("rs", "", "{.items[*].metadata.name}")
        #expect(after.split(separator: " ").count == before.split(separator: " ").count + 1, "\(before) → \(after)")
        #expect(await cluster.jsonpath("deployment", "web", "{.metadata.annotations.deployment\\.kubernetes\\.io/revision}") == "5")

        // The official Python client reads the status as kube-controller-manager leaves it.
        let python = try await runProcessOffPool("/usr/bin/env", ["python3", "-c", """
            import sys
            from kubernetes import client, config
            config.load_kube_config(config_file=sys.argv[1])
            d = client.AppsV1Api().read_namespaced_deployment("web", "default")
            print("status", d.status.replicas, d.status.updated_replicas, d.status.ready_replicas, d.status.available_replicas,
                  d.status.observed_generation == d.metadata.generation)
            print("progressing", [c.reason for c in d.status.conditions if c.type == "Progressing"])
            """, cluster.server.directory + "/kubeconfig"])
        #expect(python.output.contains("status 3 3 3 3 True") && python.output.contains("progressing ['NewReplicaSetAvailable']"),
                "\(python.output)")

        // Deleting the Deployment takes its ReplicaSets and pods with it.
        #expect(try await cluster.kubectl("delete", "deployment", "web").status == 0)
        #expect(await eventually(timeout: .seconds(20)) { (try? await cluster.pods("app=web").total) == 0 })
        #expect(await cluster.jsonpath("rs", "", "{.items[*].metadata.name}").isEmpty)
        await cluster.stop()
    }

    @Test func recreateStopsEveryOldPodBeforeStartingNewOnesAndHistoryIsLimited() async throws {
        let cluster = try await WorkloadCluster()
        let applied = try await cluster.kubectl("apply", "-f", "@input", input: """
            apiVersion: apps/v1
            kind: Deployment
            metadata: {name: db}
            spec:
              replicas: 2
              revisionHistoryLimit: 1
              strategy: {type: Recreate}
              selector: {matchLabels: {app: db}}
              template:
                metadata: {labels: {app: db}}
                spec: {containers: [{name: db, image: "db:1"}]}
            """)
        #expect(applied.status == 0, "\(applied.output)")
        #expect(try await cluster.rolloutStatus("db").status == 0)
        let mixed = Mutex(false)
        let watcher = Task {
            while !Task.isCancelled {
                if let pods = try? await cluster.pods("app=db"), pods.images.count > 1 { mixed.withLock { $0 = true } }
                try? await Task.sleep(for: .milliseconds(20))
            }
        }
        for version in 2...3 {
            #expect(try await cluster.kubectl("set", "image", "deployment/db", "db=db:\(version)").status == 0)
            #expect(try await cluster.rolloutStatus("db").status == 0)
            #expect(await eventually(timeout: .seconds(20)) { (try? await cluster.pods("app=db"))?.images == ["db:\(version)"] })
        }
        watcher.cancel()
        #expect(!mixed.withLock { $0 }, "old and new pods ran together")
        // revisionHistoryLimit 1: the current ReplicaSet and one old one.
        let revisions = await cluster.jsonpath("rs", "", "{.items[*].metadata.annotations.deployment\\.kubernetes\\.io/revision}")
        #expect(await eventually(timeout: .seconds(10)) {
            await cluster.jsonpath("rs", "", "{.items[*].metadata.annotations.deployment\\.kubernetes\\.io/revision}").split(separator: " ").sorted() == ["2", "3"]
        }, "\(revisions))")
        await cluster.stop()
    }

    @Test func aRolloutThatMakesNoProgressExceedsItsDeadlineAndKubectlSaysSo() async throws {
        let cluster = try await WorkloadCluster()
        let applied = try await cluster.kubectl("apply", "-f", "@input", input: """
            apiVersion: apps/v1
            kind: Deployment
            metadata: {name: stuck}
            spec:
              replicas: 1
              progressDeadlineSeconds: 2
              selector: {matchLabels: {app: stuck}}
              template:
                metadata: {labels: {app: stuck, stuck: "true"}}
                spec: {containers: [{name: c, image: never}]}
            """)
        #expect(applied.status == 0, "\(applied.output)")
        let status = try await cluster.rolloutStatus("stuck", timeout: "30s")
        #expect(status.status != 0 && status.output.contains("exceeded its progress deadline"), "\(status.output)")
        let condition = await cluster.jsonpath("deployment", "stuck", "{.status.conditions[?(@.type==\"Progressing\")].status}/{.status.conditions[?(@.type==\"Progressing\")].message}")
        #expect(condition.hasPrefix("False/ReplicaSet \"stuck-") && condition.hasSuffix("\" has timed out progressing."), "\(condition)")
        #expect(await cluster.jsonpath("deployment", "stuck", "{.status.conditions[?(@.type==\"Available\")].reason}") == "MinimumReplicasUnavailable")
        await cluster.stop()
    }

    @Test func jsonPatchesApplyAsKubeAPIServerAppliesThem() async throws {
        let cluster = try await WorkloadCluster()
        #expect(try await cluster.kubectl("create", "configmap", "settings", "--from-literal=a=1").status == 0)
        let patched = try await cluster.kubectl("patch", "configmap", "settings", "--type=json", "-p",
                                                #"[{"op":"add","path":"/data/b","value":"2"},{"op":"remove","path":"/data/a"}]"#)
        #expect(patched.status == 0, "\(patched.output)")
        #expect(await cluster.jsonpath("configmap", "settings", "{.data}") == #"{"b":"2"}"#)
        let missing = try await cluster.kubectl("patch", "configmap", "settings", "--type=json", "-p", #"[{"op":"replace","path":"/data/zzz","value":"2"}]"#)
        #expect(missing.status != 0 && missing.output.contains("/data/zzz"), "\(missing.output)")
        await cluster.stop()
    }
}
