import Foundation
import Testing
import TestSupport

/// The product end to end: real cloudcore and edgecore processes, the embedded API server driven
/// by the real kubectl, a real mosquitto broker; pods run under Edged's process runtime.
@Suite(.serialized) struct EndToEndTests {
    /// A ConfigMap and a pod for `node` whose container prints the ConfigMap's value (mounted as
    /// a volume under `directory`) and stays up. Without `serviceAccountToken` the pod opts out
    /// of the API access volume (and so of the shared `kube-root-ca.crt`), so that what the edge
    /// holds is exactly the pod and its ConfigMap.
    static func appYAML(node: String, name: String = "app", value: String, directory: String, serviceAccountToken: Bool = false) -> String {
        """
        apiVersion: v1
        kind: ConfigMap
        metadata: {name: \(name)-cfg, namespace: default}
        data: {greeting: "\(value)"}
        ---
        apiVersion: v1
        kind: Pod
        metadata: {name: \(name), namespace: default}
        spec:
          nodeName: \(node)
          automountServiceAccountToken: \(serviceAccountToken)
          containers:
          - name: main
            image: busybox
            command: ["/bin/sh", "-c", "cat \(directory)/mnt-\(name)/greeting; echo; exec sleep 3600"]
            volumeMounts: [{name: cfg, mountPath: \(directory)/mnt-\(name)}]
          volumes: [{name: cfg, configMap: {name: \(name)-cfg}}]

        """
    }

    /// Lists every kind the embedded server serves with the `kubernetes` package from PyPI, whose
    /// models refuse objects that lack a field the Kubernetes API marks required.
    static let pythonListsEveryKind = """
        import sys
        from kubernetes import client, config
        config.load_kube_config(config_file=sys.argv[1])
        core, custom = client.CoreV1Api(), client.CustomObjectsApi()
        for kind, items in [
            ("Namespace", core.list_namespace().items), ("Node", core.list_node().items),
            ("Pod", core.list_pod_for_all_namespaces().items), ("ConfigMap", core.list_config_map_for_all_namespaces().items),
            ("Secret", core.list_secret_for_all_namespaces().items), ("Service", core.list_service_for_all_namespaces().items),
            ("Endpoints", core.list_endpoints_for_all_namespaces().items), ("Event", core.list_event_for_all_namespaces().items),
            ("Lease", client.CoordinationV1Api().list_lease_for_all_namespaces().items),
            ("Device", custom.list_cluster_custom_object("devices.kubeedge.io", "v1beta1", "devices")["items"]),
            ("DeviceModel", custom.list_cluster_custom_object("devices.kubeedge.io", "v1beta1", "devicemodels")["items"]),
            ("ObjectSync", custom.list_cluster_custom_object("reliablesyncs.kubeedge.io", "v1alpha1", "objectsyncs")["items"]),
            ("ClusterObjectSync", custom.list_cluster_custom_object("reliablesyncs.kubeedge.io", "v1alpha1", "clusterobjectsyncs")["items"]),
        ]:
            print("listed", kind, len(items))
        pod = core.read_namespaced_pod("app", "default")
        print("pod", pod.metadata.name, pod.status.phase, "ready=%s" % pod.status.container_statuses[0].ready)
        node = core.read_node("e2e-edge-1")
        print("node", node.metadata.name, "Ready=%s" % [c.status for c in node.status.conditions if c.type == "Ready"][0])
        """

    @Test func kubectlAppliesAConfigMapAndAPodThatRunAtTheEdgeAndReportTheirStatusBack() async throws {
        let cluster = try await EdgeCluster()
        defer { cluster.end() }
        let (directory, cloud) = (cluster.directory, cluster.cloud)
        let edge = try await cluster.addEdge("e2e-edge-1")

        // The edge registers its Node on first connection, Ready.
        #expect(await eventually(timeout: .seconds(30)) {
            await cloud.jsonPath("{.status.conditions[?(@.type==\"Ready\")].status}", of: "node", "e2e-edge-1") == "True"
        }, "\(cloud.log)")
        let labels = await cloud.jsonPath("{.metadata.labels}", of: "node", "e2e-edge-1") ?? ""
        #expect(labels.contains("node-role.kubernetes.io/edge"))
        // Its status reports keep the Node and its Lease current.
        #expect(await eventually(timeout: .seconds(15)) {
            await cloud.jsonPath("{.status.nodeInfo.kubeletVersion}", of: "node", "e2e-edge-1")?.hasPrefix("v1.") == true
        }, "\(cloud.log)")
        #expect(await cloud.jsonPath("{.status.addresses[?(@.type==\"InternalIP\")].address}", of: "node", "e2e-edge-1")?.isEmpty == false)
        #expect(await cloud.jsonPath("{.status.capacity.pods}", of: "node", "e2e-edge-1") == "110")
        let firstRenewal = await cloud.jsonPath("{.spec.renewTime}", of: "lease", "-n", "kube-node-lease", "e2e-edge-1") ?? ""
        #expect(!firstRenewal.isEmpty)
        #expect(await eventually(timeout: .seconds(10)) {
            let renewed = await cloud.jsonPath("{.spec.renewTime}", of: "lease", "-n", "kube-node-lease", "e2e-edge-1") ?? ""
            return !renewed.isEmpty && renewed != firstRenewal
        })

        try await cloud.apply(Self.appYAML(node: "e2e-edge-1", value: "hello from the cloud", directory: directory, serviceAccountToken: true))
        // MetaManager holds both (the edge's own API answers them).
        #expect(await eventually(timeout: .seconds(30)) {
            configMapValue(await edge.localObject("/api/v1/namespaces/default/configmaps/app-cfg"), "greeting") == "hello from the cloud"
        }, "\(edge.log)")
        #expect(await edge.localObject("/api/v1/namespaces/default/pods/app") != nil)
        // Edged runs it, and kubectl shows the status the edge reported.
        #expect(await eventually(timeout: .seconds(30)) { await cloud.jsonPath("{.status.phase}", of: "pod", "app") == "Running" }, "\(edge.log)")
        #expect(await cloud.jsonPath("{.status.containerStatuses[0].ready}", of: "pod", "app") == "true")
        #expect(await cloud.jsonPath("{.status.containerStatuses[0].restartCount}", of: "pod", "app") == "0")
        let podIP = await cloud.jsonPath("{.status.hostIP}", of: "pod", "app") ?? ""
        #expect(!podIP.isEmpty)
        // The container read the ConfigMap through its volume.
        let logs = try FileManager.default.subpathsOfDirectory(atPath: edge.directory + "/edged").filter { $0.hasSuffix(".log") }
        let printed = logs.compactMap { try? String(contentsOfFile: edge.directory + "/edged/" + $0, encoding: .utf8) }.joined()
        #expect(printed.contains("hello from the cloud"), "\(logs)")

        // The official Python client reads every kind served, the edge's pod and node included.
        let python = try await runProcessOffPool("/usr/bin/env", ["python3", "-c", Self.pythonListsEveryKind, cloud.kubeconfig])
        #expect(python.status == 0, "\(python.output)")
        for kind in ["Namespace", "Node", "Pod", "ConfigMap", "Secret", "Service", "Endpoints", "Event", "Lease", "Device", "DeviceModel", "ObjectSync", "ClusterObjectSync"] {
            #expect(python.output.contains("listed \(kind)"), "\(python.output)")
        }
        #expect(python.output.contains("pod app Running ready=True"), "\(python.output)")
        #expect(python.output.contains("node e2e-edge-1 Ready=True"), "\(python.output)")

        // Deleting the pod stops it at the edge and removes it from the edge's store.
        try await cloud.kubectl("delete", "pod", "app", "--wait=false")
        #expect(await eventually(timeout: .seconds(30)) { await edge.local("/api/v1/namespaces/default/pods/app")?.status == 404 }, "\(edge.log)")
        #expect(await cloud.stop() == 0, "cloudcore did not exit cleanly on SIGTERM: \(cloud.log)")
    }

    @Test func anEdgeAwayConvergesToExactlyTheLatestStateAndCloudcoreKilledMidStreamLeavesNoDuplicateEffects() async throws {
        let cluster = try await EdgeCluster()
        defer { cluster.end() }
        let (directory, cloud) = (cluster.directory, cluster.cloud)
        let edge = try await cluster.addEdge("e2e-away")
        try await cloud.apply(Self.appYAML(node: "e2e-away", name: "app", value: "v1", directory: directory))
        try await cloud.apply(Self.appYAML(node: "e2e-away", name: "old", value: "old", directory: directory))
        for pod in ["app", "old"] {
            #expect(await eventually(timeout: .seconds(30)) { await cloud.jsonPath("{.status.phase}", of: "pod", pod) == "Running" }, "\(edge.log)")
        }
        let started = await cloud.jsonPath("{.status.containerStatuses[0].state.running.startedAt}", of: "pod", "app")

        // Away: the Node turns NotReady (Ready Unknown) after the grace period.
        #expect(await edge.stop() == 0, "edgecore did not exit cleanly on SIGTERM: \(edge.log)")
        #expect(await eventually(timeout: .seconds(30)) {
            await cloud.jsonPath("{.status.conditions[?(@.type==\"Ready\")].status}", of: "node", "e2e-away") == "Unknown"
        }, "\(cloud.log)")
        #expect(try await cloud.kubectl("get", "node", "e2e-away").contains("NotReady"))
        // Changes while it is away: one update, one pod and its ConfigMap deleted, one pod added.
        try await cloud.apply(Self.appYAML(node: "e2e-away", name: "app", value: "v2", directory: directory))
        try await cloud.kubectl("delete", "pod", "old", "--wait=false")
        try await cloud.kubectl("delete", "configmap", "old-cfg")
        try await cloud.apply(Self.appYAML(node: "e2e-away", name: "new", value: "new", directory: directory))

        try await edge.start()
        #expect(await eventually(timeout: .seconds(30)) {
            configMapValue(await edge.localObject("/api/v1/namespaces/default/configmaps/app-cfg"), "greeting") == "v2"
        }, "\(edge.log)")
        #expect(await eventually(timeout: .seconds(30)) { await cloud.jsonPath("{.status.phase}", of: "pod", "new") == "Running" }, "\(edge.log)")
        #expect(await eventually(timeout: .seconds(30)) {
            let pods = await edge.localNames("/api/v1/namespaces/default/pods")
            let configMaps = await edge.localNames("/api/v1/namespaces/default/configmaps")
            return pods == ["app", "new"] && configMaps == ["app-cfg", "new-cfg"]
        }, "\(edge.log)")
        // The deleted pod's container was stopped, the others kept running (not restarted).
        #expect(await eventually(timeout: .seconds(30)) { (try? runProcess("/usr/bin/pgrep", ["-f", directory + "/mnt-old"]))?.status == 1 })
        #expect(await cloud.jsonPath("{.status.containerStatuses[0].restartCount}", of: "pod", "app") == "0")
        #expect(await cloud.jsonPath("{.status.containerStatuses[0].state.running.startedAt}", of: "pod", "app") == started)
        #expect(await eventually(timeout: .seconds(30)) {
            await cloud.jsonPath("{.status.conditions[?(@.type==\"Ready\")].status}", of: "node", "e2e-away") == "True"
        })

        // cloudcore killed while 300 ConfigMaps stream to the edge, then started again.
        let many = (0..<300).map { index in
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bulk-\(index), namespace: default}\ndata: {n: \"\(index)\"}\n"
        }.joined(separator: "---\n")
        try await cloud.apply(many)
        try await cloud.apply("""
            apiVersion: v1
            kind: Pod
            metadata: {name: bulk, namespace: default}
            spec:
              nodeName: e2e-away
              containers:
              - {name: main, image: busybox, command: ["/bin/sh", "-c", "exec sleep 3600"], envFrom: [\(
                (0..<300).map { "{configMapRef: {name: bulk-\($0)}}" }.joined(separator: ", "))]}

            """)
        _ = await eventually(timeout: .seconds(10)) { (await edge.localNames("/api/v1/namespaces/default/configmaps")?.count ?? 0) > 2 }
        cloud.kill9()
        try await cloud.start()
        #expect(await eventually(timeout: .seconds(60)) {
            (await edge.localNames("/api/v1/namespaces/default/configmaps") ?? []).filter { $0.hasPrefix("bulk-") }.count == 300
        }, "\(edge.log)")
        #expect(await eventually(timeout: .seconds(30)) { await cloud.jsonPath("{.status.phase}", of: "pod", "bulk") == "Running" }, "\(edge.log)")
        // No duplicate effects: the pods that ran before were not restarted.
        #expect(await cloud.jsonPath("{.status.containerStatuses[0].restartCount}", of: "pod", "app") == "0")
        #expect(await cloud.jsonPath("{.status.containerStatuses[0].state.running.startedAt}", of: "pod", "app") == started)
        #expect(await cloud.jsonPath("{.status.containerStatuses[0].restartCount}", of: "pod", "bulk") == "0")
    }

    @Test func twoEdgeNodesEachReceiveOnlyTheirOwnObjects() async throws {
        let cluster = try await EdgeCluster()
        defer { cluster.end() }
        let (directory, cloud) = (cluster.directory, cluster.cloud)
        let first = try await cluster.addEdge("e2e-one")
        let second = try await cluster.addEdge("e2e-two")
        try await cloud.apply(Self.appYAML(node: "e2e-one", name: "one", value: "for one", directory: directory))
        try await cloud.apply(Self.appYAML(node: "e2e-two", name: "two", value: "for two", directory: directory))
        // A ConfigMap no pod uses goes nowhere.
        try await cloud.kubectl("create", "configmap", "unused", "--from-literal=a=b")
        for (edge, pod) in [(first, "one"), (second, "two")] {
            #expect(await eventually(timeout: .seconds(30)) { await cloud.jsonPath("{.status.phase}", of: "pod", pod) == "Running" }, "\(edge.log)")
        }
        #expect(await first.localNames("/api/v1/namespaces/default/pods") == ["one"])
        #expect(await second.localNames("/api/v1/namespaces/default/pods") == ["two"])
        #expect(await first.localNames("/api/v1/namespaces/default/configmaps") == ["one-cfg"])
        #expect(await second.localNames("/api/v1/namespaces/default/configmaps") == ["two-cfg"])
        // Moving nothing between them: a pod deleted on one leaves the other alone.
        try await cloud.kubectl("delete", "pod", "one", "--wait=false")
        #expect(await eventually(timeout: .seconds(30)) { await first.localNames("/api/v1/namespaces/default/pods") == [] })
        #expect(await second.localNames("/api/v1/namespaces/default/pods") == ["two"])
        #expect(await cloud.jsonPath("{.status.phase}", of: "pod", "two") == "Running")
    }

    @Test func afterARestartCloudcoreResendsOnlyWhatChangedAndSendsTheDeletesItMissed() async throws {
        let cluster = try await EdgeCluster()
        defer { cluster.end() }
        let (directory, cloud) = (cluster.directory, cluster.cloud)
        let edge = try await cluster.addEdge("e2e-sync")
        for name in ["stay", "gone", "changed"] {
            try await cloud.apply(Self.appYAML(node: "e2e-sync", name: name, value: name, directory: directory))
        }
        for pod in ["stay", "gone", "changed"] {
            #expect(await eventually(timeout: .seconds(30)) { await cloud.jsonPath("{.status.phase}", of: "pod", pod) == "Running" }, "\(edge.log)")
        }
        // One ObjectSync per node and object sent (three pods, three ConfigMaps).
        #expect(await eventually(timeout: .seconds(10)) {
            (await cloud.jsonPath("{.items[*].spec.objectName}", of: "objectsyncs", "-l", "reliablesyncs.kubeedge.io/node=e2e-sync") ?? "")
                .split(separator: " ").count == 6
        })

        // cloudcore down; meanwhile (through the API server alone) a pod and its ConfigMap are
        // deleted and a ConfigMap changes.
        #expect(await cloud.stop() == 0)
        try await cloud.withAPIServerAlone {
            try await cloud.kubectl("delete", "pod", "gone", "--wait=false")
            try await cloud.kubectl("delete", "configmap", "gone-cfg")
            try await cloud.kubectl("patch", "configmap", "changed-cfg", "-p", #"{"data":{"greeting":"changed while cloudcore was down"}}"#)
        }
        try await cloud.start()
        #expect(await eventually(timeout: .seconds(30)) {
            let pods = await edge.localNames("/api/v1/namespaces/default/pods")
            let configMaps = await edge.localNames("/api/v1/namespaces/default/configmaps")
            return pods == ["stay", "changed"] && configMaps == ["stay-cfg", "changed-cfg"]
        }, "\(edge.log)")
        #expect(await eventually(timeout: .seconds(30)) {
            configMapValue(await edge.localObject("/api/v1/namespaces/default/configmaps/changed-cfg"), "greeting") == "changed while cloudcore was down"
        })
        // Exactly the change, the pod's deletion mark (the edge stops it and sends the final
        // delete) and the two deletes went out; nothing else was resent.
        #expect(await eventually(timeout: .seconds(10)) { await cloud.metric("cloudcore_edgecontroller_deletes_sent_total") == 2 })
        #expect(await cloud.metric("cloudcore_edgecontroller_objects_sent_total") == 2, "\(cloud.log)")
        #expect(await eventually(timeout: .seconds(10)) {
            (await cloud.jsonPath("{.items[*].spec.objectName}", of: "objectsyncs", "-l", "reliablesyncs.kubeedge.io/node=e2e-sync") ?? "")
                .split(separator: " ").count == 4
        })
        #expect(await cloud.jsonPath("{.status.containerStatuses[0].restartCount}", of: "pod", "stay") == "0")
    }
}
