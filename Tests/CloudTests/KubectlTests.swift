import Cloud
import Foundation
import Transport
import KubeModel
import Logging
import Testing
import TestSupport

/// The embedded API server on a free loopback port and a kubeconfig for the real kubectl.
struct EmbeddedServer {
    let directory = makeTemporaryDirectory()
    let server: APIServer
    let port: Int

    /// Credentials when the server runs with TLS and authentication.
    let credentials: APIServerCredentials?

    /// With `secure`, `users` are more bearer-token users (token → user), each given a
    /// kubeconfig by ``writeKubeconfig(for:token:)``.
    init(secure: Bool = false, users: [String: UserInfo] = [:], historyLimit: Int = 100_000, bookmarkInterval: Duration = .seconds(60),
         protobufCacheBytes: Int = 64 << 20, logs: CapturedLogs? = nil) async throws {
        let store = try ObjectStore(configuration: .init(path: directory + "/api.db", historyLimit: historyLimit))
        credentials = secure ? try APIServerCredentials.loadOrCreate(directory: directory + "/pki") : nil
        let security = credentials.map { credentials in
            var security = APIServer.Security(credentials: credentials)
            security.tokens.merge(users) { admin, _ in admin }
            return security
        }
        server = APIServer(configuration: .init(port: 0, security: security, bookmarkInterval: bookmarkInterval,
                                                protobufCacheBytes: protobufCacheBytes), store: store,
                           logger: logs?.logger(label: "apiserver") ?? Logger(label: "apiserver"))
        port = try await server.start()
        if let credentials {
            try credentials.writeKubeconfig(to: directory + "/kubeconfig", server: "https://127.0.0.1:\(port)")
            return
        }
        let kubeconfig = """
            apiVersion: v1
            kind: Config
            clusters:
            - name: embedded
              cluster: {server: "http://127.0.0.1:\(port)"}
            users:
            - name: admin
              user: {}
            contexts:
            - name: embedded
              context: {cluster: embedded, user: admin, namespace: default}
            current-context: embedded

            """
        try kubeconfig.write(toFile: directory + "/kubeconfig", atomically: true, encoding: .utf8)
    }

    /// Writes a kubeconfig for a token user of a secure server; returns its path.
    func writeKubeconfig(for user: String, token: String) throws -> String {
        try credentials!.writeKubeconfig(to: directory + "/\(user).kubeconfig", server: "https://127.0.0.1:\(port)", user: user, token: token)
    }

    /// Runs kubectl against the server with a fresh discovery cache (as the admin, or with
    /// another `kubeconfig`).
    func kubectl(_ arguments: String..., input: String? = nil, kubeconfig: String? = nil,
                 environment: [String: String] = [:]) async throws -> (status: Int32, output: String) {
        try await kubectl(arguments, input: input, kubeconfig: kubeconfig, environment: environment)
    }

    func kubectl(_ arguments: [String], input: String? = nil, kubeconfig: String? = nil,
                 environment: [String: String] = [:]) async throws -> (status: Int32, output: String) {
        var all = ["--kubeconfig", kubeconfig ?? directory + "/kubeconfig", "--cache-dir", directory + "/cache", "--request-timeout", "20s"] + arguments
        if let input {
            try input.write(toFile: directory + "/input.yaml", atomically: true, encoding: .utf8)
            all = all.map { $0 == "@input" ? directory + "/input.yaml" : $0 }
        }
        return try await runProcessOffPool("/usr/bin/kubectl", all, environment: environment)
    }

    /// Starts a long-running kubectl (`get -w`) writing to a log; `read` returns the log so far.
    func kubectlInBackground(_ arguments: String..., log name: String) throws -> (process: BackgroundProcess, read: @Sendable () -> String) {
        let log = directory + "/" + name
        let process = try BackgroundProcess("/usr/bin/kubectl", ["--kubeconfig", directory + "/kubeconfig", "--cache-dir", directory + "/cache"] + arguments,
                                            outputFile: log)
        return (process, { (try? String(contentsOfFile: log, encoding: .utf8)) ?? "" })
    }

    func stop() async {
        await server.stop()
        removeTemporaryDirectory(directory)
    }
}

@Suite(.serialized) struct KubectlTests {
    /// Every built-in kind is described in OpenAPI v3 and v2: kubectl explain walks into
    /// nested fields with their types, and both documents name the same kinds.
    @Test func kubectlExplainsEveryBuiltInKindFromTheOpenAPIDocuments() async throws {
        let server = try await EmbeddedServer()
        let containers = try await server.kubectl("explain", "pods.spec.containers")
        #expect(containers.status == 0, "\(containers.output)")
        #expect(containers.output.contains("KIND:") && containers.output.contains("Pod"), "\(containers.output)")
        for field in ["image\t<string>", "ports\t<[]ContainerPort>", "resources\t<ResourceRequirements>", "env\t<[]EnvVar>"] {
            #expect(containers.output.contains(field), "\(field) in \(containers.output)")
        }
        let limits = try await server.kubectl("explain", "pod.spec.containers.resources.limits")
        #expect(limits.status == 0 && limits.output.contains("map[string]Quantity"), "\(limits.output)")
        let startTime = try await server.kubectl("explain", "pod.status.startTime")
        #expect(startTime.status == 0 && startTime.output.contains("<string>") , "\(startTime.output)")
        let probe = try await server.kubectl("explain", "pod.spec.containers.livenessProbe.httpGet.port")
        #expect(probe.status == 0 && probe.output.contains("IntOrString"), "\(probe.output)")

        // OpenAPI v2 in JSON, as clients other than kubectl read it (kubectl asks for v2 only
        // in gnostic's protobuf, which is refused with 406).
        let v2 = try await httpRequest(port: server.port, path: "/openapi/v2", headers: [("Accept", "application/json")])
        let v2Body = try await v2.text()
        #expect(v2.status == 200, "\(v2Body)")
        let document = try JSONValue(parsing: v2Body)
        #expect(document["swagger"] == .string("2.0"))
        #expect(document[path: ["definitions", "io.k8s.api.core.v1.NodeStatus", "properties", "addresses", "items", "$ref"]]
                == .string("#/definitions/io.k8s.api.core.v1.NodeAddress"))
        #expect(document[path: ["definitions", "io.k8s.api.core.v1.Pod", "x-kubernetes-group-version-kind"]]?.arrayValue?.first?["kind"] == .string("Pod"))
        let protobufOnly = try await httpRequest(port: server.port, path: "/openapi/v2",
                                                 headers: [("Accept", "application/com.github.proto-openapi.spec.v2@v1.0+protobuf")])
        let refusal = try await protobufOnly.text()
        #expect(protobufOnly.status == 406, "\(refusal)")

        // Every built-in resource kubectl lists is explained.
        let resources = try await server.kubectl("api-resources", "--no-headers", "-o", "name")
        #expect(resources.status == 0, "\(resources.output)")
        let names = resources.output.split(separator: "\n").map(String.init)
        #expect(names.count >= APIResource.standard.count, "\(names)")
        for name in names {
            let explained = try await server.kubectl("explain", name)
            #expect(explained.status == 0 && explained.output.contains("FIELDS:"), "\(name): \(explained.output)")
        }
        await server.stop()
    }

    @Test func kubectlCreatesReadsPatchesAndDeletesAConfigMap() async throws {
        let server = try await EmbeddedServer()
        let resources = try await server.kubectl("api-resources")
        #expect(resources.status == 0, "\(resources.output)")
        #expect(resources.output.contains("configmaps") && resources.output.contains("devices.kubeedge.io/v1beta1"))

        // kubectl's default validation (strict): it reads the OpenAPI documents and leaves the
        // check to the server, which takes fieldValidation.
        let applied = try await server.kubectl("apply", "-f", "@input", input: """
            apiVersion: v1
            kind: ConfigMap
            metadata:
              name: app-cfg
              labels: {app: web}
            data:
              mode: edge

            """)
        #expect(applied.status == 0, "\(applied.output)")
        #expect(applied.output.contains("configmap/app-cfg created"))
        let json = try await server.kubectl("get", "configmap", "app-cfg", "-o", "json")
        #expect(json.status == 0, "\(json.output)")
        let object = try JSONValue(parsing: json.output)
        #expect(object[path: ["data", "mode"]] == .string("edge"))
        #expect(object[path: ["metadata", "namespace"]] == .string("default"))
        #expect(object[path: ["metadata", "annotations", "kubectl.kubernetes.io/last-applied-configuration"]] != nil)

        let patched = try await server.kubectl("patch", "configmap", "app-cfg", "--type", "merge", "-p", #"{"data":{"mode":"cloud","extra":"1"}}"#)
        #expect(patched.status == 0, "\(patched.output)")
        let after = try JSONValue(parsing: try await server.kubectl("get", "configmap", "app-cfg", "-o", "json").output)
        #expect(after[path: ["data", "mode"]] == .string("cloud") && after[path: ["data", "extra"]] == .string("1"))
        #expect(after[path: ["metadata", "resourceVersion"]] != object[path: ["metadata", "resourceVersion"]])

        // kubectl edit with an editor that changes one value in the file it is given.
        let edited = try await server.kubectl("edit", "configmap", "app-cfg", environment: ["KUBE_EDITOR": "sed -i s/mode:\\ cloud/mode:\\ edited/"])
        #expect(edited.status == 0 && edited.output.contains("edited"), "\(edited.output)")
        #expect(try JSONValue(parsing: try await server.kubectl("get", "configmap", "app-cfg", "-o", "json").output)[path: ["data", "mode"]] == .string("edited"))

        let yaml = try await server.kubectl("get", "configmaps", "-o", "yaml")
        #expect(yaml.output.contains("kind: List") || yaml.output.contains("kind: ConfigMapList"), "\(yaml.output)")
        #expect(yaml.output.contains("name: app-cfg"))

        let deleted = try await server.kubectl("delete", "configmap", "app-cfg")
        #expect(deleted.status == 0 && deleted.output.contains("deleted"), "\(deleted.output)")
        let gone = try await server.kubectl("get", "configmap", "app-cfg")
        #expect(gone.status != 0)
        #expect(gone.output.contains("NotFound") || gone.output.contains("not found"), "\(gone.output)")
        await server.stop()
    }

    @Test func kubectlAppliesAgainLabelsAndPatchesStrategically() async throws {
        let server = try await EmbeddedServer()
        let pod = { (image: String) in """
            apiVersion: v1
            kind: Pod
            metadata:
              name: web
            spec:
              nodeName: edge-1
              containers:
              - name: app
                image: app:1
                ports: [{containerPort: 8080}]
              - name: sidecar
                image: \(image)

            """ }
        #expect(try await server.kubectl("apply", "--validate=false", "-f", "@input", input: pod("proxy:1")).status == 0)
        // A second apply sends a strategic merge patch that names only what changed.
        let again = try await server.kubectl("apply", "--validate=false", "-f", "@input", input: pod("proxy:2"))
        #expect(again.status == 0 && again.output.contains("pod/web configured"), "\(again.output)")
        let object = try JSONValue(parsing: try await server.kubectl("get", "pod", "web", "-o", "json").output)
        let containers = object[path: ["spec", "containers"]]?.arrayValue ?? []
        #expect(containers.compactMap { $0["image"]?.stringValue } == ["app:1", "proxy:2"])
        #expect(containers.first?["ports"]?.arrayValue?.count == 1)

        let labelled = try await server.kubectl("label", "pod", "web", "tier=front")
        #expect(labelled.status == 0, "\(labelled.output)")
        let strategic = try await server.kubectl("patch", "pod", "web", "--type", "strategic", "-p", #"{"spec":{"containers":[{"name":"app","image":"app:2"}]}}"#)
        #expect(strategic.status == 0, "\(strategic.output)")
        let after = try JSONValue(parsing: try await server.kubectl("get", "pod", "web", "-o", "json").output)
        #expect(after[path: ["metadata", "labels", "tier"]] == .string("front"))
        #expect(after[path: ["spec", "containers"]]?.arrayValue?.compactMap { $0["image"]?.stringValue } == ["app:2", "proxy:2"])
        // Selectors: by label, and by spec.nodeName as EdgeController lists a node's pods.
        _ = try await server.kubectl("run", "other", "--image", "x:1", "--restart", "Never", "--labels", "tier=back")
        #expect(try await server.kubectl("get", "pods", "-l", "tier=front", "-o", "name").output.split(separator: "\n") == ["pod/web"])
        #expect(try await server.kubectl("get", "pods", "--field-selector", "spec.nodeName=edge-1", "-o", "name").output.split(separator: "\n") == ["pod/web"])
        #expect(try await server.kubectl("get", "pods", "-o", "name").output.split(separator: "\n").count == 2)
        // Set-based terms too; a malformed one is refused.
        #expect(try await server.kubectl("get", "pods", "-l", "tier in (front,middle)", "-o", "name").output.split(separator: "\n") == ["pod/web"])
        #expect(try await server.kubectl("get", "pods", "-l", "tier notin (front),tier", "-o", "name").output.split(separator: "\n") == ["pod/other"])
        let badSelector = try await server.kubectl("get", "--raw", "/api/v1/namespaces/default/pods?labelSelector=tier%20in%20(a")
        #expect(badSelector.status != 0 && badSelector.output.contains("unbalanced parentheses"), "\(badSelector.output)")
        let deviceRefused = try await server.kubectl("patch", "devices.devices.kubeedge.io", "nope", "--type", "strategic", "-p", "{}")
        #expect(deviceRefused.status != 0)
        await server.stop()
    }

    @Test func kubectlWatchSeesChangesAsTheyHappen() async throws {
        let server = try await EmbeddedServer()
        #expect(try await server.kubectl("create", "configmap", "first", "--from-literal", "k=1").status == 0)
        let (watch, read) = try server.kubectlInBackground("get", "configmaps", "-w", "-o", "custom-columns=NAME:.metadata.name,VALUE:.data.k", log: "watch.log")
        defer { watch.stop() }
        #expect(await eventually { read().contains("first") })
        #expect(try await server.kubectl("create", "configmap", "second", "--from-literal", "k=2").status == 0)
        #expect(try await server.kubectl("patch", "configmap", "first", "--type", "merge", "-p", #"{"data":{"k":"changed"}}"#).status == 0)
        #expect(await eventually { read().contains("second") && read().contains("changed") }, "\(read())")
        watch.stop()
        await server.stop()
    }

    @Test func kubectlValidatesDescribesAndAppliesDevices() async throws {
        let server = try await EmbeddedServer()
        // With validation on (kubectl's default): the OpenAPI index says the server validates.
        let applied = try await server.kubectl("apply", "-f", "@input", input: "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: p}\ndata: {a: b}\n")
        #expect(applied.status == 0 && applied.output.contains("configmap/p created"), "\(applied.output)")
        let describe = try await server.kubectl("describe", "configmap", "p")
        #expect(describe.status == 0 && describe.output.contains("Name:         p") && describe.output.contains("Namespace:    default"), "\(describe.output)")
        // A KubeEdge Device (a custom resource: kubectl patches it with a JSON merge patch).
        let device = { (node: String) in "apiVersion: devices.kubeedge.io/v1beta1\nkind: Device\nmetadata: {name: thermo}\nspec: {nodeName: \(node), deviceModelRef: {name: t}}\n" }
        #expect(try await server.kubectl("apply", "-f", "@input", input: device("edge-1")).output.contains("device.devices.kubeedge.io/thermo created"))
        let moved = try await server.kubectl("apply", "-f", "@input", input: device("edge-2"))
        #expect(moved.output.contains("configured"), "\(moved.output)")
        // kubectl get prints the usual columns from the server's Table.
        let node = """
            apiVersion: v1
            kind: Node
            metadata:
              name: edge-1
              labels: {node-role.kubernetes.io/edge: "", node-role.kubernetes.io/agent: ""}
            status:
              conditions: [{type: Ready, status: "True"}]
              nodeInfo: {kubeletVersion: v1.31.0-kubeedge}

            """
        #expect(try await server.kubectl("apply", "-f", "@input", input: node).status == 0)
        let nodes = try await server.kubectl("get", "nodes")
        let lines = nodes.output.split(separator: "\n").map { $0.split(separator: " ", omittingEmptySubsequences: true).map(String.init) }
        #expect(lines.first == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"], "\(nodes.output)")
        #expect(lines.dropFirst().first.map { [$0[0], $0[1], $0[2], $0[4]] } == ["edge-1", "Ready", "agent,edge", "v1.31.0-kubeedge"], "\(nodes.output)")
        #expect(try await server.kubectl("run", "web", "--image", "x:1").status == 0)
        let pods = try await server.kubectl("get", "pods", "-o", "wide")
        #expect(pods.output.hasPrefix("NAME") && pods.output.contains("READY") && pods.output.contains("RESTARTS") && pods.output.contains("NODE"), "\(pods.output)")
        #expect(pods.output.contains("0/1") && pods.output.contains("Pending"), "\(pods.output)")
        let stored = try JSONValue(parsing: try await server.kubectl("get", "devices.devices.kubeedge.io", "thermo", "-o", "json").output)
        #expect(stored[path: ["spec", "nodeName"]] == .string("edge-2") && stored[path: ["spec", "deviceModelRef", "name"]] == .string("t"))
        await server.stop()
    }

    @Test func kubectlWatchesDescribesEditsAndLabelsPodsNodesAndDevices() async throws {
        let server = try await EmbeddedServer()
        let node = "apiVersion: v1\nkind: Node\nmetadata: {name: edge-1}\nstatus: {conditions: [{type: Ready, status: \"True\", reason: EdgeReady}]}\n"
        #expect(try await server.kubectl("apply", "-f", "@input", input: node).status == 0)
        let device = "apiVersion: devices.kubeedge.io/v1beta1\nkind: Device\nmetadata: {name: thermo}\nspec: {nodeName: edge-1, deviceModelRef: {name: t}}\n"
        #expect(try await server.kubectl("apply", "-f", "@input", input: device).status == 0)

        // get -w on pods: a pod appearing and its status changing show up as they happen.
        let (watch, read) = try server.kubectlInBackground("get", "pods", "-w", "-o", "custom-columns=NAME:.metadata.name,PHASE:.status.phase,NODE:.spec.nodeName",
                                                           log: "pods.log")
        defer { watch.stop() }
        #expect(try await server.kubectl("run", "web", "--image", "x:1", "--overrides", #"{"spec":{"nodeName":"edge-1"}}"#).status == 0)
        #expect(await eventually { read().contains("web") && read().contains("Pending") }, "\(read())")
        #expect(try await server.kubectl("patch", "pod", "web", "--subresource", "status", "--type", "merge", "-p", #"{"status":{"phase":"Running"}}"#).status == 0)
        #expect(await eventually { read().contains("Running") }, "\(read())")
        watch.stop()

        // describe pod (with an event about it, found by the pod's uid) and node (its pods found
        // by spec.nodeName).
        let uid = try await server.kubectl("get", "pod", "web", "-o", "jsonpath={.metadata.uid}").output
        let event = """
            apiVersion: v1
            kind: Event
            metadata: {name: web.1}
            involvedObject: {kind: Pod, name: web, namespace: default, uid: \(uid)}
            reason: Started
            message: Started container web
            type: Normal
            count: 1

            """
        #expect(try await server.kubectl("apply", "-f", "@input", input: event).status == 0)
        let pod = try await server.kubectl("describe", "pod", "web")
        #expect(pod.status == 0 && pod.output.contains("Node:") && pod.output.contains("edge-1") && pod.output.contains("Status:       Running"), "\(pod.output)")
        #expect(pod.output.contains("Started container web"), "the pod's events: \(pod.output)")
        let described = try await server.kubectl("describe", "node", "edge-1")
        #expect(described.status == 0 && described.output.contains("Name:               edge-1") && described.output.contains("EdgeReady"), "\(described.output)")
        #expect(described.output.contains("Non-terminated Pods:") && described.output.contains("web"), "\(described.output)")

        // label and edit a Node and a Device.
        #expect(try await server.kubectl("label", "node", "edge-1", "zone=north").status == 0)
        let edited = try await server.kubectl("edit", "node", "edge-1", environment: ["KUBE_EDITOR": "sed -i s/zone:\\ north/zone:\\ south/"])
        #expect(edited.status == 0, "\(edited.output)")
        #expect(try await server.kubectl("get", "nodes", "-l", "zone=south", "-o", "name").output.trimmingCharacters(in: .whitespacesAndNewlines) == "node/edge-1")
        #expect(try await server.kubectl("label", "device", "thermo", "kind=sensor").status == 0)
        let editedDevice = try await server.kubectl("edit", "device", "thermo", environment: ["KUBE_EDITOR": "sed -i s/nodeName:\\ edge-1/nodeName:\\ edge-2/"])
        #expect(editedDevice.status == 0, "\(editedDevice.output)")
        let stored = try JSONValue(parsing: try await server.kubectl("get", "device", "thermo", "-o", "json").output)
        #expect(stored[path: ["spec", "nodeName"]] == .string("edge-2") && stored[path: ["metadata", "labels", "kind"]] == .string("sensor"), "\(stored)")
        let describedDevice = try await server.kubectl("describe", "device", "thermo")
        #expect(describedDevice.status == 0 && describedDevice.output.contains("edge-2"), "\(describedDevice.output)")
        await server.stop()
    }

    @Test func kubectlAppliesServerSideWithFieldOwnershipAndConflicts() async throws {
        let server = try await EmbeddedServer()
        let pod = { (labels: String, image: String) in """
            apiVersion: v1
            kind: Pod
            metadata: {name: web, labels: {\(labels)}}
            spec: {containers: [{name: app, image: "\(image)"}, {name: side, image: "side:1"}]}

            """ }
        let created = try await server.kubectl("apply", "--server-side", "-f", "@input", input: pod("a: '1', b: '2'", "app:1"))
        #expect(created.status == 0 && created.output.contains("pod/web serverside-applied"), "\(created.output)")
        let get = { try JSONValue(parsing: try await server.kubectl("get", "pod", "web", "-o", "json", "--show-managed-fields").output) }
        var object = try await get()
        let managers = object[path: ["metadata", "managedFields"]]?.arrayValue ?? []
        #expect(managers.map { $0["manager"]?.stringValue } == ["kubectl"] && managers.first?["operation"] == .string("Apply"), "\(managers)")
        #expect(object[path: ["status", "phase"]] == .string("Pending"))

        // Applying again without label b removes it (a merge would keep it).
        #expect(try await server.kubectl("apply", "--server-side", "-f", "@input", input: pod("a: '1'", "app:2")).status == 0)
        object = try await get()
        #expect(object[path: ["metadata", "labels"]] == (try JSONValue(parsing: #"{"a":"1"}"#)), "\(object)")
        #expect(object[path: ["spec", "containers"]]?.arrayValue?.compactMap { $0["image"]?.stringValue } == ["app:2", "side:1"])

        // Another manager setting the same field differently conflicts, unless it forces.
        let conflict = try await server.kubectl("apply", "--server-side", "--field-manager", "other", "-f", "@input", input: pod("a: '1'", "app:3"))
        #expect(conflict.status != 0 && conflict.output.contains(#"conflict with "kubectl""#) && conflict.output.contains(#".spec.containers[name="app"].image"#),
                "\(conflict.output)")
        #expect(try await get()[path: ["spec", "containers"]]?.arrayValue?.first?["image"] == .string("app:2"), "nothing changed")
        let forced = try await server.kubectl("apply", "--server-side", "--force-conflicts", "--field-manager", "other", "-f", "@input", input: pod("a: '1'", "app:3"))
        #expect(forced.status == 0, "\(forced.output)")
        #expect(try await get()[path: ["spec", "containers"]]?.arrayValue?.first?["image"] == .string("app:3"))
        // Now kubectl no longer owns the image: its next apply conflicts with "other".
        let back = try await server.kubectl("apply", "--server-side", "-f", "@input", input: pod("a: '1'", "app:2"))
        #expect(back.status != 0 && back.output.contains(#"conflict with "other""#), "\(back.output)")

        // A custom resource (lists atomic), created by apply.
        let device = "apiVersion: devices.kubeedge.io/v1beta1\nkind: Device\nmetadata: {name: thermo}\nspec: {nodeName: edge-1}\n"
        let applied = try await server.kubectl("apply", "--server-side", "-f", "@input", input: device)
        #expect(applied.status == 0 && applied.output.contains("serverside-applied"), "\(applied.output)")
        await server.stop()
    }

    @Test func kubectlValidationRefusesWarnsOfOrIgnoresUnknownFieldsAndDryRunsStoreNothing() async throws {
        let server = try await EmbeddedServer()
        let pod = { (name: String) in "apiVersion: v1\nkind: Pod\nmetadata: {name: \(name)}\nspec: {containers: [{name: app, image: app:1, imagePullPolice: Always}]}\n" }
        let strict = try await server.kubectl("apply", "-f", "@input", input: pod("strict"))
        #expect(strict.status != 0 && strict.output.contains(#"strict decoding error: unknown field "spec.containers[0].imagePullPolice""#), "\(strict.output)")
        #expect(try await server.kubectl("get", "pod", "strict").status != 0, "nothing was stored")
        let warned = try await server.kubectl("apply", "--validate=warn", "-f", "@input", input: pod("warned"))
        #expect(warned.status == 0 && warned.output.contains(#"Warning: unknown field "spec.containers[0].imagePullPolice""#), "\(warned.output)")
        let ignored = try await server.kubectl("apply", "--validate=false", "-f", "@input", input: pod("ignored"))
        #expect(ignored.status == 0 && !ignored.output.contains("Warning"), "\(ignored.output)")
        let configMap = try await server.kubectl("create", "-f", "@input", input: "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, labelz: {a: b}}\ndatas: {k: v}\n")
        #expect(configMap.status != 0 && configMap.output.contains(#"unknown field "datas""#) && configMap.output.contains(#"unknown field "metadata.labelz""#),
                "\(configMap.output)")
        // Patches are checked on their result; server-side apply on the configuration.
        let patch = { (validation: String) in
            try await runProcessOffPool("/usr/bin/curl", [
                "-s", "-i", "-X", "PATCH", "-H", "Content-Type: application/merge-patch+json", "--data", #"{"spec":{"nodeNam":"edge-1"}}"#,
                "http://127.0.0.1:\(server.port)/api/v1/namespaces/default/pods/warned?fieldValidation=\(validation)",
            ]).output
        }
        let refused = try await patch("Strict")
        #expect(refused.hasPrefix("HTTP/1.1 400") && refused.contains(#"unknown field \"spec.nodeNam\""#), "\(refused)")
        let accepted = try await patch("Warn")
        #expect(accepted.hasPrefix("HTTP/1.1 200") && accepted.contains(#"Warning: 299 - "unknown field \"spec.nodeNam\"""#), "\(accepted)")
        #expect(try await patch("Sometimes").hasPrefix("HTTP/1.1 400"))
        let applied = try await server.kubectl("apply", "--server-side", "-f", "@input", input: pod("applied"))
        #expect(applied.status != 0 && applied.output.contains("imagePullPolice"), "\(applied.output)")

        // --dry-run=server: checked in full, nothing stored or deleted.
        let good = "apiVersion: v1\nkind: Pod\nmetadata: {name: dry}\nspec: {containers: [{name: app, image: app:1}]}\n"
        let dryCreate = try await server.kubectl("apply", "--dry-run=server", "-f", "@input", input: good)
        #expect(dryCreate.status == 0 && dryCreate.output.contains("pod/dry created (server dry run)"), "\(dryCreate.output)")
        #expect(try await server.kubectl("get", "pod", "dry").status != 0)
        #expect(try await server.kubectl("apply", "--dry-run=server", "-f", "@input", input: pod("dry")).status != 0, "still validated")
        let dryDelete = try await server.kubectl("delete", "pod", "warned", "--dry-run=server")
        #expect(dryDelete.status == 0 && dryDelete.output.contains("(server dry run)"), "\(dryDelete.output)")
        #expect(try await server.kubectl("get", "pod", "warned").status == 0)
        await server.stop()
    }

    @Test func overTLSOnlyATokenOrACertificateFromItsCAGetsIn() async throws {
        let server = try await EmbeddedServer(secure: true)
        let credentials = try #require(server.credentials)
        // The admin kubeconfig written for kubectl: TLS verified against the server's CA, admin token.
        // Objects need their namespace; a cluster starts with the usual ones.
        let noNamespace = try await server.kubectl("create", "configmap", "c", "-n", "edge")
        #expect(noNamespace.status != 0 && noNamespace.output.contains("namespaces \"edge\" not found"), "\(noNamespace.output)")
        let namespaces = try await server.kubectl("create", "namespace", "edge")
        #expect(namespaces.status == 0, "\(namespaces.output)")
        #expect(try await server.kubectl("create", "configmap", "c", "-n", "edge").status == 0)
        let all = try await server.kubectl("get", "namespaces", "-o", "name")
        #expect(all.output.split(separator: "\n").sorted() == ["namespace/default", "namespace/edge", "namespace/kube-node-lease", "namespace/kube-public", "namespace/kube-system", "namespace/kubeedge"])
        #expect(try await server.kubectl("get", "namespaces", "-o", "name").output.contains("namespace/edge"))
        let wrongToken = try await server.kubectl("get", "pods", "--token", "not-the-token")
        #expect(wrongToken.status != 0 && wrongToken.output.contains("Unauthorized"), "\(wrongToken.output)")

        // A client certificate issued by the server's CA authenticates as its common name.
        let key = try PrivateKey.generate()
        let request = try CertificateSigningRequest(commonName: CertificateAuthority.nodeNamePrefix + "edge-1", organization: CertificateAuthority.nodeOrganization, key: key)
        let certificate = try credentials.authority.issueNodeCertificate(for: request, node: "edge-1")
        try Data(try certificate.export()).write(to: URL(fileURLWithPath: server.directory + "/node.crt"))
        try Data(try key.export()).write(to: URL(fileURLWithPath: server.directory + "/node.key"))
        try Data(try credentials.authority.certificate.export()).write(to: URL(fileURLWithPath: server.directory + "/ca.crt"))
        let base = ["--server", "https://127.0.0.1:\(server.port)", "--certificate-authority", server.directory + "/ca.crt", "--cache-dir", server.directory + "/cache2",
                    "--kubeconfig", "/dev/null"]
        let asNode = base + ["--client-certificate", server.directory + "/node.crt", "--client-key", server.directory + "/node.key", "get", "namespaces", "-o", "name"]
        // Authenticated (403, not 401) as the common name in the organization's group; RBAC decides what it may do.
        let beforeBinding = try await runProcessOffPool("/usr/bin/kubectl", asNode)
        #expect(beforeBinding.status != 0 && beforeBinding.output.contains(#"User "system:node:edge-1" cannot list resource "namespaces""#), "\(beforeBinding.output)")
        #expect(try await server.kubectl("create", "clusterrolebinding", "nodes-view", "--clusterrole=view", "--group=" + CertificateAuthority.nodeOrganization).status == 0)
        let byCertificate = try await runProcessOffPool("/usr/bin/kubectl", asNode)
        #expect(byCertificate.status == 0 && byCertificate.output.contains("namespace/edge"), "\(byCertificate.output)")
        // No credentials at all; and a certificate from another CA does not get through TLS.
        // (curl, since kubectl would prompt for a user name)
        let anonymous = try await runProcessOffPool("/usr/bin/curl", ["-s", "--cacert", server.directory + "/ca.crt", "https://127.0.0.1:\(server.port)/api/v1/namespaces"])
        let status = try JSONValue(parsing: anonymous.output)
        #expect(status["kind"] == .string("Status") && status["code"] == .number("401") && status["reason"] == .string("Unauthorized"), "\(anonymous.output)")
        let otherCA = try CertificateAuthority.create(commonName: "other")
        let foreign = try otherCA.issueNodeCertificate(for: request, node: "edge-1")
        try Data(try foreign.export()).write(to: URL(fileURLWithPath: server.directory + "/foreign.crt"))
        let refused = try await runProcessOffPool("/usr/bin/kubectl", base + ["--client-certificate", server.directory + "/foreign.crt",
                                                                                "--client-key", server.directory + "/node.key", "get", "namespaces"])
        #expect(refused.status != 0, "\(refused.output)")
        await server.stop()
    }
}

@Suite struct CloudcoreAPIServerTests {
    @Test func cloudcoreRunsTheServerWritesTheKubeconfigAndKeepsObjectsAcrossARestart() async throws {
        let directory = makeTemporaryDirectory()
        defer { removeTemporaryDirectory(directory) }
        let binary = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("cloudcore").path
        let port = freeLoopbackPort()
        let kubeconfig = directory + "/data/admin.kubeconfig"
        let kubectl = { (arguments: [String]) in
            try await runProcessOffPool("/usr/bin/kubectl", ["--kubeconfig", kubeconfig, "--cache-dir", directory + "/cache"] + arguments)
        }
        var server = try BackgroundProcess(binary, ["apiserver", "--data-dir", directory + "/data", "--port", "\(port)"], outputFile: directory + "/1.log")
        defer { server.stop() }
        #expect(await eventually(timeout: .seconds(20)) { FileManager.default.fileExists(atPath: kubeconfig) && acceptsConnections(port: port) })
        let created = try await kubectl(["create", "configmap", "kept", "--from-literal", "k=v"])
        #expect(created.status == 0, "\(created.output)")
        #expect(await server.signal(SIGTERM, waitingUpTo: .seconds(10)) == 0)

        // Restarted: the same CA and token (the kubeconfig still works), the objects still there.
        server = try BackgroundProcess(binary, ["apiserver", "--data-dir", directory + "/data", "--port", "\(port)"], outputFile: directory + "/2.log")
        #expect(await eventually(timeout: .seconds(20)) { acceptsConnections(port: port) })
        let kept = try await kubectl(["get", "configmap", "kept", "-o", "jsonpath={.data.k}"])
        #expect(kept.status == 0 && kept.output == "v", "\(kept.output)")
        #expect(await server.signal(SIGTERM, waitingUpTo: .seconds(10)) == 0)
    }
}

@Suite struct APIServerBadInputTests {
    /// Names as kube-apiserver checks them on create, per kind, in its words; the uid is always
    /// the server's.
    @Test func namesAreCheckedPerKindAndTheServerMakesTheUID() async throws {
        let server = try await EmbeddedServer()
        defer { removeTemporaryDirectory(server.directory) }
        let configMap = try await server.kubectl("create", "configmap", "Bad_Name")
        #expect(configMap.output.contains(#"ConfigMap "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"#),
                "\(configMap.output)")
        let service = try await server.kubectl("create", "service", "clusterip", "1st", "--tcp=80:80")
        #expect(service.output.contains(#"metadata.name: Invalid value: "1st": a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"#),
                "\(service.output)")
        let namespace = try await server.kubectl("create", "namespace", "team.a")
        #expect(namespace.output.contains(#"a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-'"#), "\(namespace.output)")
        let long = String(repeating: "a", count: 254)
        let tooLong = try await server.kubectl("create", "configmap", long)
        #expect(tooLong.output.contains("metadata.name: Invalid value: \"\(long)\": must be no more than 253 characters"), "\(tooLong.output)")
        // RBAC's names are path segments: colons are fine, slashes are not.
        #expect(try await server.kubectl("create", "clusterrole", "team:reader", "--verb=get", "--resource=pods").status == 0)
        #expect(try await server.kubectl("get", "configmap", "Bad_Name").status != 0, "nothing stored")

        let created = try await httpRequest(.POST, port: server.port, path: "/api/v1/namespaces/default/configmaps",
                                            body: #"{"metadata":{"name":"mine","uid":"chosen-by-the-client"}}"#)
        let object = try JSONValue(parsing: try await created.text())
        #expect(created.status == 201)
        let uid = object[path: ["metadata", "uid"]]?.stringValue ?? ""
        #expect(uid != "chosen-by-the-client" && UUID(uuidString: uid) != nil, "\(uid)")
        let slash = try await httpRequest(.POST, port: server.port, path: "/apis/rbac.authorization.k8s.io/v1/clusterroles",
                                          body: #"{"metadata":{"name":"a/b"},"rules":[]}"#)
        let slashMessage = try JSONValue(parsing: try await slash.text())["message"]?.stringValue ?? ""
        #expect(slash.status == 422 && slashMessage == #"ClusterRole.rbac.authorization.k8s.io "a/b" is invalid: metadata.name: Invalid value: "a/b": may not contain '/'"#,
                "\(slashMessage)")
        await server.server.stop()
    }

    @Test func malformedOversizedUnknownAndUnauthorisedRequestsGetAStatus() async throws {
        let directory = makeTemporaryDirectory()
        defer { removeTemporaryDirectory(directory) }
        let store = try ObjectStore(configuration: .init(path: directory + "/api.db"))
        let server = APIServer(configuration: .init(port: 0, maxBodyBytes: 1024), store: store)
        let port = try await server.start()
        let send = { (method: String, path: String, body: String?, contentType: String) async throws -> JSONValue in
            var arguments = ["-s", "-X", method, "http://127.0.0.1:\(port)\(path)", "-H", "Content-Type: \(contentType)"]
            if let body { arguments += ["--data-binary", body] }
            return try JSONValue(parsing: try await runProcessOffPool("/usr/bin/curl", arguments).output)
        }
        let call = { (method: String, path: String, body: String?) async throws -> JSONValue in try await send(method, path, body, "application/json") }
        let malformed = try await call("POST", "/api/v1/namespaces/default/configmaps", #"{"metadata":"#)
        #expect(malformed["code"] == .number("400") && malformed["message"]?.stringValue?.contains("not JSON") == true, "\(malformed)")
        let oversized = try await call("POST", "/api/v1/namespaces/default/configmaps", String(repeating: " ", count: 2000) + "{}")
        #expect(oversized["code"] == .number("413"), "\(oversized)")
        #expect(try await call("GET", "/api/v1/widgets", nil)["code"] == .number("404"))
        #expect(try await call("PUT", "/api/v1/namespaces/default/configmaps", "{}")["code"] == .number("405"))
        let nameless = try await call("POST", "/api/v1/namespaces/default/configmaps", #"{"data":{}}"#)
        #expect(nameless["code"] == .number("422"), "\(nameless)")
        let wrongKind = try await call("POST", "/api/v1/namespaces/default/configmaps", #"{"kind":"Pod","metadata":{"name":"x"}}"#)
        #expect(wrongKind["code"] == .number("400"), "\(wrongKind)")
        #expect(try await store.list(resource: "configmaps").objects.isEmpty)

        // Server-side apply, dry runs, validation and delete options refuse what they cannot read.
        let applyPath = "/api/v1/namespaces/default/configmaps/c"
        let noManager = try await send("PATCH", applyPath, #"{"metadata":{"name":"c"}}"#, "application/apply-patch+yaml")
        #expect(noManager["code"] == .number("400") && noManager["message"]?.stringValue?.contains("fieldManager") == true, "\(noManager)")
        let badYAML = try await send("PATCH", applyPath + "?fieldManager=m", "metadata: {name: [", "application/apply-patch+yaml")
        #expect(badYAML["code"] == .number("400") && badYAML["message"]?.stringValue?.contains("neither JSON nor YAML") == true, "\(badYAML)")
        let notAnObject = try await send("PATCH", applyPath + "?fieldManager=m", "- a\n- b\n", "application/apply-patch+yaml")
        #expect(notAnObject["code"] == .number("400"), "\(notAnObject)")
        let badDryRun = try await call("POST", "/api/v1/namespaces/default/configmaps?dryRun=Some", #"{"metadata":{"name":"d"}}"#)
        #expect(badDryRun["code"] == .number("400") && badDryRun["message"]?.stringValue?.contains("dryRun") == true, "\(badDryRun)")
        let badValidation = try await call("POST", "/api/v1/namespaces/default/configmaps?fieldValidation=Loose", #"{"metadata":{"name":"d"}}"#)
        #expect(badValidation["code"] == .number("400"), "\(badValidation)")
        #expect(try await store.list(resource: "configmaps").objects.isEmpty)
        _ = try await call("POST", "/api/v1/namespaces/default/configmaps", #"{"metadata":{"name":"kept"}}"#)
        let badOptions = try await call("DELETE", "/api/v1/namespaces/default/configmaps/kept", #"{"dryRun":"#)
        #expect(badOptions["code"] == .number("400"), "\(badOptions)")
        let wrongUID = try await call("DELETE", "/api/v1/namespaces/default/configmaps/kept", #"{"preconditions":{"uid":"other"}}"#)
        #expect(wrongUID["code"] == .number("409"), "\(wrongUID)")
        #expect(try await store.list(resource: "configmaps").objects.count == 1)
        await server.stop()
    }
}
