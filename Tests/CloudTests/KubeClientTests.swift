import Cloud
import Foundation
import KubeModel
import Testing
import TestSupport
import Transport

private func resource(_ plural: String) -> APIResource { APIResource.standard.first { $0.plural == plural }! }

@Suite(.serialized) struct KubeClientTests {
    @Test func kubeconfigsResolveContextsFilesAndInlineData() throws {
        let directory = makeTemporaryDirectory()
        defer { removeTemporaryDirectory(directory) }
        try "PEM-CA".write(toFile: directory + "/ca.crt", atomically: true, encoding: .utf8)
        try "secret-token\n".write(toFile: directory + "/token", atomically: true, encoding: .utf8)
        let yaml = """
            apiVersion: v1
            kind: Config
            current-context: a
            clusters:
            - {name: one, cluster: {server: "https://10.0.0.1:6443", certificate-authority: ca.crt}}
            - {name: two, cluster: {server: "https://two:443", certificate-authority-data: \(Data("INLINE".utf8).base64EncodedString()), insecure-skip-tls-verify: true}}
            users:
            - {name: u1, user: {tokenFile: token}}
            - {name: u2, user: {client-certificate-data: \(Data("CERT".utf8).base64EncodedString()), client-key-data: \(Data("KEY".utf8).base64EncodedString())}}
            contexts:
            - {name: a, context: {cluster: one, user: u1, namespace: kube-system}}
            - {name: b, context: {cluster: two, user: u2}}

            """
        let a = try Kubeconfig.parse(yaml, directory: directory)
        #expect(a == Kubeconfig(server: "https://10.0.0.1:6443", certificateAuthorityPEM: Array("PEM-CA".utf8), token: "secret-token", namespace: "kube-system"))
        let b = try Kubeconfig.parse(yaml, context: "b", directory: directory)
        #expect(b.certificateAuthorityPEM == Array("INLINE".utf8) && b.insecureSkipTLSVerify && b.namespace == "default")
        #expect(b.clientCertificatePEM == Array("CERT".utf8) && b.clientKeyPEM == Array("KEY".utf8) && b.token == nil)
        #expect(throws: KubeconfigError.self) { try Kubeconfig.parse(yaml, context: "missing", directory: directory) }
        #expect(throws: KubeconfigError.self) { try Kubeconfig.parse(yaml.replacingOccurrences(of: "ca.crt", with: "absent.crt"), directory: directory) }
    }

    @Test func theClientReadsAndWritesWhatKubectlSeesOverTLSWithAToken() async throws {
        let server = try await EmbeddedServer(secure: true)
        let client = try KubeClient(configuration: try Kubeconfig.load(path: server.directory + "/kubeconfig"))
        // An object with every field set (Kubernetes' round-trip test data) survives the client's
        // read-modify-write: only what it changed changes.
        var node = try JSONValue(parsing: Data(contentsOf: URL(fileURLWithPath: testdataDirectory + "/core.v1.Node.json")))
        for field in ["resourceVersion", "namespace", "uid", "generation", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds"] {
            node.set(nil, at: ["metadata", field])
        }
        node.set(.string("edge-1"), at: ["metadata", "name"])
        let created = try await client.create(resource("nodes"), node)
        var read = try await client.get(resource("nodes"), name: "edge-1")
        #expect(read == created)
        read.set(.string("true"), at: ["metadata", "labels", "node-role.kubernetes.io/edge"])
        let updated = try await client.update(resource("nodes"), read)
        var expected = created
        expected.set(.string("true"), at: ["metadata", "labels", "node-role.kubernetes.io/edge"])
        expected.set(updated[path: ["metadata", "resourceVersion"]], at: ["metadata", "resourceVersion"])
        #expect(updated == expected)
        // A stale version is the server's 409 Conflict, reported as such.
        await #expect(throws: APIError.conflict("nodes", "edge-1")) { _ = try await client.update(resource("nodes"), read) }

        // Status, patches, selectors; kubectl sees the client's writes and the client kubectl's.
        var status = updated
        status.set(.array([.object(JSONObject([("type", .string("Ready")), ("status", .string("True"))]))]), at: ["status", "conditions"])
        _ = try await client.updateStatus(resource("nodes"), status)
        let kubectlNodes = try await server.kubectl("get", "nodes")
        #expect(kubectlNodes.output.contains("edge-1") && kubectlNodes.output.contains("Ready"), "\(kubectlNodes.output)")
        #expect(try await server.kubectl("run", "web", "--image", "a:1", "--overrides", #"{"spec":{"nodeName":"edge-1"}}"#).status == 0)
        let pods = try await client.list(resource("pods"), namespace: "default", fieldSelector: "spec.nodeName=edge-1")
        #expect(pods.items.compactMap { $0[path: ["metadata", "name"]]?.stringValue } == ["web"])
        let patched = try await client.patch(resource("pods"), namespace: "default", name: "web",
                                             try JSONValue(parsing: #"{"status":{"phase":"Running"}}"#), status: true)
        #expect(patched[path: ["status", "phase"]] == .string("Running"))
        #expect(try await server.kubectl("get", "pod", "web").output.contains("Running"))
        // On a node: marked for its node to stop; the node's final delete (grace 0, uid) removes it.
        let marked = try await client.delete(resource("pods"), namespace: "default", name: "web")
        #expect(marked[path: ["metadata", "deletionGracePeriodSeconds"]] == .integer(30))
        #expect(try await client.get(resource("pods"), namespace: "default", name: "web")[path: ["metadata", "deletionTimestamp"]] != nil)
        try await client.delete(resource("pods"), namespace: "default", name: "web", options: .object(JSONObject([
            ("gracePeriodSeconds", .integer(0)), ("preconditions", .object(JSONObject([("uid", marked[path: ["metadata", "uid"]] ?? .null)]))),
        ])))
        await #expect(throws: APIError.notFound("pods", "web")) { _ = try await client.get(resource("pods"), namespace: "default", name: "web") }
        await server.stop()
    }

    @Test func theClientKeepsConnectionsAliveAndReconnectsAfterTheServerRestarts() async throws {
        let directory = makeTemporaryDirectory()
        defer { removeTemporaryDirectory(directory) }
        let port = freeLoopbackPort()
        let server = APIServer(configuration: .init(port: port), store: try ObjectStore(configuration: .init(path: directory + "/api.db")))
        try await server.start()
        let client = try KubeClient(configuration: Kubeconfig(server: "http://127.0.0.1:\(port)"), maxIdleConnections: 4)
        for index in 0..<50 {
            _ = try await client.create(resource("configmaps"), namespace: "default", try JSONValue(parsing: #"{"metadata":{"name":"cm-\#(index)"}}"#))
        }
        #expect(server.connections.accepted == 1, "one after another, the requests share one connection")
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<40 { group.addTask { _ = try await client.get(resource("configmaps"), namespace: "default", name: "cm-\(index)") } }
            try await group.waitForAll()
        }
        let accepted = server.connections.accepted
        #expect(accepted > 1 && accepted <= 41, "concurrent requests open connections of their own")
        #expect(await eventually { server.connections.open <= 4 }, "at most maxIdleConnections stay open: \(server.connections)")

        // The pooled connections die with the server; the next read opens a new one.
        await server.stop()
        try await server.start()
        let read = try await client.get(resource("configmaps"), namespace: "default", name: "cm-7")
        #expect(read[path: ["metadata", "name"]] == .string("cm-7"))

        // A watch the client drops ends on the server too (its connection closes).
        let open = server.connections.open
        do {
            var events = client.watchStream(resource("configmaps"), namespace: "default", resourceVersion: "0").makeAsyncIterator()
            #expect(try await events.next()?.type == "ADDED")
            #expect(server.connections.open == open + 1)
        }
        #expect(await eventually { server.connections.open == open }, "\(server.connections)")
        await server.stop()
    }

    @Test func aResponseLongerThanTheClientsLimitIsAnErrorAndListsBeyondSixteenMiBAreRead() async throws {
        let directory = makeTemporaryDirectory()
        defer { removeTemporaryDirectory(directory) }
        let server = APIServer(configuration: .init(port: 0), store: try ObjectStore(configuration: .init(path: directory + "/api.db")))
        let port = try await server.start()
        let client = try KubeClient(configuration: Kubeconfig(server: "http://127.0.0.1:\(port)"))
        // 20 ConfigMaps of 1 MiB each: a 20 MiB list, above the server's parse limit for one body.
        let value = String(repeating: "x", count: 1 << 20)
        for index in 0..<20 {
            _ = try await client.create(resource("configmaps"), namespace: "default", .object(JSONObject([
                ("metadata", .object(JSONObject([("name", .string("big-\(index)"))]))), ("data", .object(JSONObject([("v", .string(value))]))),
            ])))
        }
        #expect(try await client.list(resource("configmaps"), namespace: "default").items.count == 20)
        let small = try KubeClient(configuration: Kubeconfig(server: "http://127.0.0.1:\(port)"), maxResponseBytes: 4 << 20)
        await #expect { _ = try await small.list(resource("configmaps"), namespace: "default") } throws: { error in
            "\(error)".contains("longer than the client's limit of 4194304 bytes")
        }
        // The connection it closed is not reused; the next request works.
        #expect(try await small.get(resource("configmaps"), namespace: "default", name: "big-0")[path: ["metadata", "name"]] == .string("big-0"))
        await server.stop()
    }

    @Test func typedObjectsReadAndWriteTheirFieldsAndKeepEveryOther() async throws {
        let server = try await EmbeddedServer(secure: true)
        let client = try KubeClient(configuration: try Kubeconfig.load(path: server.directory + "/kubeconfig"))
        // kubectl writes; the typed client reads what it wrote.
        #expect(try await server.kubectl("create", "secret", "generic", "creds", "--from-literal", "password=s3cr=t").status == 0)
        let secret = try await client.get(Kube.Secret.self, namespace: "default", name: "creds")
        #expect(secret.data["password"] == Array("s3cr=t".utf8) && secret.type == "Opaque")
        #expect(try await server.kubectl("create", "configmap", "app", "--from-literal", "mode=edge").status == 0)
        var config = try await client.get(Kube.ConfigMap.self, namespace: "default", name: "app")
        config.data["extra"] = "1"
        config = try await client.update(config)
        #expect(try await server.kubectl("get", "configmap", "app", "-o", "jsonpath={.data.extra}").output == "1")

        // A pod with a field no accessor names keeps it through a typed read-modify-write.
        let applied = try await server.kubectl("apply", "-f", "@input", input: """
            apiVersion: v1
            kind: Pod
            metadata: {name: web, labels: {app: web}}
            spec:
              nodeName: edge-1
              priorityClassName: edge-critical
              containers: [{name: app, image: app:1, command: [/bin/app], args: [--port, "80"]}]

            """)
        #expect(applied.status == 0, "\(applied.output)")
        var pod = try await client.get(Kube.Pod.self, namespace: "default", name: "web")
        #expect(pod.nodeName == "edge-1" && pod.phase == "Pending" && pod.restartPolicy == "Always" && pod.labels == ["app": "web"])
        #expect(pod.containers.map(\.command) == [["/bin/app"]] && pod.containers.first?.args == ["--port", "80"])
        pod.labels["tier"] = "edge"
        pod.containers[0].image = "app:2"
        pod = try await client.update(pod)
        pod.phase = "Running"
        pod.conditions = [KubeCondition(type: "Ready", status: true)]
        pod = try await client.updateStatus(pod)
        let stored = try JSONValue(parsing: try await server.kubectl("get", "pod", "web", "-o", "json").output)
        #expect(stored[path: ["spec", "priorityClassName"]] == .string("edge-critical"), "the unnamed field survived")
        #expect(stored[path: ["metadata", "labels", "tier"]] == .string("edge") && stored[path: ["status", "phase"]] == .string("Running"))
        #expect(try await client.list(Kube.Pod.self, namespace: "default", fieldSelector: "spec.nodeName=edge-1").items.map(\.name) == ["web"])

        // Nodes (cluster-scoped), Devices (a KubeEdge CRD) and Leases through the same calls.
        var node = Kube.Node(name: "edge-1")
        node.conditions = [KubeCondition(type: "Ready", status: true, reason: "EdgeReady")]
        node = try await client.create(node)
        #expect(node.isReady == true && node.namespace.isEmpty && node.uid != nil)
        #expect(try await server.kubectl("get", "node", "edge-1").output.contains("Ready"))
        var device = Kube.Device(name: "thermo", namespace: "default")
        device.nodeName = "edge-1"
        device.json.set(try JSONValue(parsing: #"[{"name":"temperature","desired":{"value":"21"}}]"#), at: ["spec", "properties"])
        device = try await client.create(device)
        #expect(try await server.kubectl("get", "device", "thermo", "-o", "jsonpath={.spec.nodeName}").output == "edge-1")
        #expect(try await client.get(Kube.Device.self, namespace: "default", name: "thermo").desired == ["temperature": "21"])
        var lease = Kube.Lease(name: "edge-1", namespace: "kube-node-lease")
        lease.holderIdentity = "edge-1"
        lease.leaseDurationSeconds = 40
        _ = try await client.create(lease)
        #expect(try await client.get(Kube.Lease.self, namespace: "kube-node-lease", name: "edge-1").leaseDurationSeconds == 40)

        // A typed watch.
        let from = try await client.list(Kube.ConfigMap.self, namespace: "default").resourceVersion
        var events = client.watchStream(Kube.ConfigMap.self, namespace: "default", resourceVersion: from).makeAsyncIterator()
        #expect(try await server.kubectl("create", "configmap", "later", "--from-literal", "k=v").status == 0)
        let event = try await events.next()
        #expect(event?.type == "ADDED" && event?.object.data == ["k": "v"])
        await server.stop()
    }

    @Test func anInformerFollowsChangesAndListsAgainAfterExpiry() async throws {
        let server = try await EmbeddedServer(secure: true, historyLimit: 1)
        let client = try KubeClient(configuration: try Kubeconfig.load(path: server.directory + "/kubeconfig"))
        // Only the test's own ConfigMaps in the namespace, not the CA every namespace gets.
        #expect(try await server.kubectl("delete", "configmap", "kube-root-ca.crt").status == 0)
        #expect(try await server.kubectl("create", "configmap", "before", "--from-literal", "k=0").status == 0)
        let informer = Informer(client: client, resource: resource("configmaps"), configuration: .init(namespace: "default", watchTimeoutSeconds: 1))
        informer.start()
        var events = informer.events.makeAsyncIterator()
        let before = try await client.get(resource("configmaps"), namespace: "default", name: "before")
        #expect(await events.next() == .added(before))
        #expect(try await server.kubectl("create", "configmap", "after", "--from-literal", "k=1").status == 0)
        guard case .added(let added)? = await events.next() else { Issue.record("expected an ADDED event"); return }
        #expect(added[path: ["metadata", "name"]] == .string("after"))
        _ = try await client.patch(resource("configmaps"), namespace: "default", name: "after", try JSONValue(parsing: #"{"data":{"k":"2"}}"#))
        guard case .updated(_, let new)? = await events.next() else { Issue.record("expected an update"); return }
        #expect(new[path: ["data", "k"]] == .string("2"))

        // Changes elsewhere move the revision on; compaction then leaves the informer's version
        // behind: its next watch (each lasts 1 s) is 410 Expired, and it lists again.
        for index in 0..<3 {
            _ = try await client.create(resource("namespaces"), try JSONValue(parsing: #"{"metadata":{"name":"ns-\#(index)"}}"#))
        }
        try await server.server.store.compact()
        #expect(await eventually(timeout: .seconds(15)) { informer.counters.relistsAfterExpiry >= 1 && informer.counters.lists >= 2 }, "\(informer.counters)")
        // Watching again after the list: a delete arrives as such.
        #expect(try await server.kubectl("delete", "configmap", "before").status == 0)
        guard case .deleted(let deleted)? = await events.next() else { Issue.record("expected a delete"); return }
        #expect(deleted[path: ["metadata", "name"]] == .string("before"))
        #expect(informer.objects.count == 1 && informer.get(namespace: "default", name: "after") != nil)
        await informer.stop()
        await server.stop()
    }

    @Test func bookmarksKeepAnInformerAheadOfCompaction() async throws {
        let server = try await EmbeddedServer(secure: true, historyLimit: 1, bookmarkInterval: .milliseconds(200))
        let client = try KubeClient(configuration: try Kubeconfig.load(path: server.directory + "/kubeconfig"))
        let informer = Informer(client: client, resource: resource("configmaps"), configuration: .init(namespace: "default", watchTimeoutSeconds: 1))
        informer.start()
        #expect(await eventually { informer.hasSynced })
        for index in 0..<3 {
            _ = try await client.create(resource("namespaces"), try JSONValue(parsing: #"{"metadata":{"name":"ns-\#(index)"}}"#))
        }
        // A bookmark carries the informer past the other resource's changes before compaction.
        try await Task.sleep(for: .milliseconds(600))
        try await server.server.store.compact()
        let watches = informer.counters.watches
        #expect(await eventually(timeout: .seconds(10)) { informer.counters.watches >= watches + 2 })
        #expect(informer.counters.relistsAfterExpiry == 0 && informer.counters.lists == 1, "\(informer.counters)")
        await informer.stop()
        await server.stop()
    }
}
