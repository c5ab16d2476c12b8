import Cloud
@testable import CloudHub
import EdgeHub
import Foundation
import KubeModel
import NIOCore
import Testing
import TestSupport
import Transport

/// The EdgeController between the embedded API server (driven by kubectl) and a real CloudHub
/// with an edge connected over the channel.
@Suite(.serialized) struct EdgeControllerTests {
    @Test func aPodUsesTheConfigMapsAndSecretsOfItsVolumesEnvironmentAndPullSecrets() throws {
        let pod = try JSONValue(parsing: """
            {"metadata":{"name":"p","namespace":"apps"},"spec":{
             "volumes":[{"name":"a","configMap":{"name":"cm-volume"}},{"name":"b","secret":{"secretName":"s-volume"}},{"name":"e","emptyDir":{}},
                        {"name":"c","projected":{"sources":[{"configMap":{"name":"cm-projected"}},{"secret":{"name":"s-projected"}},{"downwardAPI":{}}]}}],
             "initContainers":[{"name":"i","env":[{"name":"X","valueFrom":{"secretKeyRef":{"name":"s-init","key":"k"}}}]}],
             "containers":[{"name":"c","env":[{"name":"Y","value":"plain"},{"name":"Z","valueFrom":{"configMapKeyRef":{"name":"cm-env","key":"k"}}},
                                               {"name":"F","valueFrom":{"fieldRef":{"fieldPath":"metadata.name"}}}],
                            "envFrom":[{"configMapRef":{"name":"cm-from"}},{"secretRef":{"name":"s-from"}}]}],
             "imagePullSecrets":[{"name":"s-pull"}]}}
            """)
        let keys = PodReferences.of(pod).map(\.resource).sorted()
        #expect(keys == ["apps/configmap/cm-env", "apps/configmap/cm-from", "apps/configmap/cm-projected", "apps/configmap/cm-volume",
                         "apps/secret/s-from", "apps/secret/s-init", "apps/secret/s-projected", "apps/secret/s-pull", "apps/secret/s-volume"])
        #expect(PodReferences.of(try JSONValue(parsing: #"{"metadata":{"name":"bare"},"spec":{"containers":[{"name":"c"}]}}"#)).isEmpty)
    }

    @Test func anEdgeNodeRegistersAndReceivesExactlyItsPodsAndWhatTheyUseAndItsPodStatusReachesTheAPI() async throws {
        let server = try await EmbeddedServer()
        let fixture = try await HubFixture()
        let client = try KubeClient(configuration: try Kubeconfig.load(path: server.directory + "/kubeconfig"))
        let clock = ManualClock()
        let controller = EdgeController(client: client, hub: fixture.hub, configuration: .init(clock: clock))
        controller.start()
        let router = Task {
            for await incoming in fixture.hub.incoming { _ = await controller.handle(incoming) }
        }
        let bus = MessageBus()
        let meta = bus.register(module: "metaManager", group: "meta")
        let edge = try EdgeHub(configuration: fixture.edgeConfiguration("edge-1", token: try fixture.hub.makeToken()), bus: bus, group: testGroup)
        edge.start()

        // The node registers itself by connecting.
        #expect(await eventually(timeout: .seconds(20)) {
            let ready = try? await server.kubectl("get", "node", "edge-1", "-o", #"jsonpath={.metadata.labels.node-role\.kubernetes\.io/edge}:{.status.conditions[?(@.type=="Ready")].status}"#)
            return ready?.output == ":True"
        })

        // Its pod and the ConfigMap the pod uses reach it; another node's pod and an unused Secret do not.
        let applied = try await server.kubectl("apply", "-f", "@input", input: """
            apiVersion: v1
            kind: ConfigMap
            metadata: {name: app}
            data: {mode: edge}
            ---
            apiVersion: v1
            kind: Secret
            metadata: {name: unused}
            stringData: {token: x}
            ---
            apiVersion: v1
            kind: Pod
            metadata: {name: web}
            spec:
              nodeName: edge-1
              containers:
              - name: c
                image: busybox
                env: [{name: MODE, valueFrom: {configMapKeyRef: {name: app, key: mode}}}]
            ---
            apiVersion: v1
            kind: Pod
            metadata: {name: elsewhere}
            spec:
              nodeName: worker-1
              containers: [{name: c, image: busybox}]
            """)
        #expect(applied.status == 0, "\(applied.output)")
        let first = try await collect(2, from: meta, lane: .state)
        #expect(Set(first.map { "\($0.router.operation) \($0.router.resource)" }) == ["insert default/configmap/app", "insert default/pod/web"])

        // A change of the ConfigMap follows.
        let edited = try await server.kubectl("patch", "configmap", "app", "-p", #"{"data":{"mode":"changed"}}"#)
        #expect(edited.status == 0, "\(edited.output)")
        let update = try await collect(1, from: meta, lane: .state)
        #expect(update.first?.router.operation == "update" && update.first?.router.resource == "default/configmap/app")
        #expect(update.first.map { String(buffer: $0.content).contains("changed") } == true)

        // The edge reports the pod's status; kubectl sees it.
        let status = #"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web","namespace":"default"},"status":{"phase":"Running","conditions":[{"type":"Ready","status":"True"}]}}"#
        try await meta.send(Message(router: MessageRouter(source: "metaManager", destination: EdgeHub.moduleName, group: "resource", operation: "update",
                                                          resource: "default/podstatus/web"), content: ByteBuffer(string: status)), on: .state, delivery: .reliable)
        #expect(await eventually(timeout: .seconds(20)) {
            (try? await server.kubectl("get", "pod", "web", "-o", "jsonpath={.status.phase}"))?.output == "Running"
        })

        // Status the controller must not write: malformed, for another node's pod, for an
        // earlier pod of the same name. Each is dropped and counted; other messages are not its.
        func report(_ node: String, _ resource: String, _ content: String) -> NodeMessage {
            NodeMessage(node: node, lane: .state, message: Message(router: MessageRouter(source: "edged", group: "resource", operation: "update", resource: resource),
                                                                   content: ByteBuffer(string: content)))
        }
        let failed = #"{"status":{"phase":"Failed"}}"#
        #expect(await controller.handle(report("edge-1", "default/podstatus/web", "{not json")))
        #expect(await controller.handle(report("edge-1", "default/podstatus/elsewhere", failed)))
        #expect(await controller.handle(report("edge-2", "default/podstatus/web", failed)))
        #expect(await controller.handle(report("edge-1", "default/podstatus/web", #"{"metadata":{"uid":"an-earlier-pod"},"status":{"phase":"Failed"}}"#)))
        #expect(await controller.handle(report("edge-1", "default/device/d1", failed)) == false)
        #expect(controller.counters.podStatusesDropped == 4 && controller.counters.podStatusesWritten == 1)
        #expect((try await server.kubectl("get", "pod", "web", "-o", "jsonpath={.status.phase}")).output == "Running")
        #expect((try await server.kubectl("get", "pod", "elsewhere", "-o", "jsonpath={.status.phase}")).output != "Failed")

        // Node status: a node writes its own Node and Lease only; malformed reports are dropped.
        let nodeStatus = #"{"status":{"conditions":[{"type":"Ready","status":"True"}],"nodeInfo":{"kubeletVersion":"v1.31.0-test"}}}"#
        #expect(await controller.handle(report("edge-1", "default/nodestatus/edge-1", nodeStatus)))
        #expect(await controller.handle(report("edge-1", "default/nodestatus/edge-2", nodeStatus)))
        #expect(await controller.handle(report("edge-1", "default/nodestatus/edge-1", "{not json")))
        #expect(await controller.handle(report("edge-1", "default/nodestatus/edge-1", #"{"status":"a string"}"#)))
        #expect(controller.counters.nodeStatusesWritten == 1 && controller.counters.nodeStatusesDropped == 3, "\(controller.counters)")
        #expect((try await server.kubectl("get", "node", "edge-1", "-o", "jsonpath={.status.nodeInfo.kubeletVersion}")).output == "v1.31.0-test")
        #expect((try await server.kubectl("get", "node", "edge-2")).status != 0)
        #expect((try await server.kubectl("get", "lease", "-n", "kube-node-lease", "edge-1", "-o", "jsonpath={.spec.holderIdentity}")).output == "edge-1")
        #expect((try await server.kubectl("get", "lease", "-n", "kube-node-lease", "edge-2")).status != 0)

        // Deleting the pod marks it (it runs on a node): the edge receives it with its
        // deletionTimestamp and grace period, and the pod stays until the edge's final delete.
        let deleted = try await server.kubectl("delete", "pod", "web", "--wait=false")
        #expect(deleted.status == 0, "\(deleted.output)")
        let marked = try await collect(1, from: meta, lane: .state)
        #expect(marked.first?.router.operation == "update" && marked.first?.router.resource == "default/pod/web")
        let markedPod = try JSONValue(parsing: String(buffer: try #require(marked.first).content))
        #expect(markedPod[path: ["metadata", "deletionTimestamp"]] != nil && markedPod[path: ["metadata", "deletionGracePeriodSeconds"]] == .integer(30))
        let uid = try #require(markedPod[path: ["metadata", "uid"]]?.stringValue)
        func finalDelete(uid: String) async throws {
            try await meta.send(Message(router: MessageRouter(source: "edged", destination: EdgeHub.moduleName, group: "resource", operation: "delete",
                                                              resource: "default/pod/web"),
                                        content: ByteBuffer(string: #"{"gracePeriodSeconds":0,"preconditions":{"uid":"\#(uid)"}}"#)),
                                on: .state, delivery: .reliable)
        }
        // A final delete for an earlier pod of the name removes nothing.
        try await finalDelete(uid: "an-earlier-pod")
        try await Task.sleep(for: .milliseconds(500))
        #expect((try await server.kubectl("get", "pod", "web", "-o", "jsonpath={.metadata.deletionGracePeriodSeconds}")).output == "30")
        #expect(controller.counters.finalDeletes == 0)
        // The edge stopped it: removed, and the edge is told, with the ConfigMap only it used.
        try await finalDelete(uid: uid)
        let deletes = try await collect(2, from: meta, lane: .state)
        #expect(Set(deletes.map { "\($0.router.operation) \($0.router.resource)" }) == ["delete default/configmap/app", "delete default/pod/web"])

        // Away for less than the default grace period (40 s, on the test's clock): still Ready.
        // Longer: Ready turns Unknown, and the node is tainted unreachable:NoSchedule beside
        // the taints it had (no NoExecute: its pods are not evicted).
        #expect(try await server.kubectl("taint", "node", "edge-1", "dedicated=x:NoSchedule").status == 0)
        let taints = { try? await server.kubectl("get", "node", "edge-1", "-o", "jsonpath={range .spec.taints[*]}{.key}:{.effect} {end}").output }
        await edge.stop()
        let readiness = { try? await server.kubectl("get", "node", "edge-1", "-o", #"jsonpath={.status.conditions[?(@.type=="Ready")].status}"#).output }
        #expect(await eventually(timeout: .seconds(20)) { controller.nodesInGracePeriod == ["edge-1"] })
        #expect(await clock.waitForSleepers())
        clock.advance(by: .seconds(39))
        #expect(await clock.waitForSleepers(), "the grace loop looked at the clock and sleeps again")
        #expect(controller.nodesInGracePeriod == ["edge-1"])
        #expect(await readiness() == "True")
        clock.advance(by: .seconds(2))
        #expect(await eventually(timeout: .seconds(20)) { await readiness() == "Unknown" })
        #expect(await eventually(timeout: .seconds(10)) { await taints() == "dedicated:NoSchedule node.kubernetes.io/unreachable:NoSchedule " })
        #expect(controller.nodesInGracePeriod.isEmpty)
        let counters = controller.counters
        #expect(counters.nodesRegistered == 1 && counters.podStatusesWritten == 1 && counters.failures == 0, "\(counters)")

        router.cancel()
        await controller.stop()
        await fixture.stop()
        await server.server.stop()
        removeTemporaryDirectory(server.directory)
        removeTemporaryDirectory(fixture.directory)
    }

    @Test func theServicesSelectingAnEdgePodGoToItsNodeWithTheirEndpoints() async throws {
        let server = try await EmbeddedServer()
        let fixture = try await HubFixture()
        let client = try KubeClient(configuration: try Kubeconfig.load(path: server.directory + "/kubeconfig"))
        let controller = EdgeController(client: client, hub: fixture.hub)
        controller.start()
        let bus = MessageBus()
        let meta = bus.register(module: "metaManager", group: "meta")
        let edge = try EdgeHub(configuration: fixture.edgeConfiguration("edge-1", token: try fixture.hub.makeToken()), bus: bus, group: testGroup)
        edge.start()
        let applied = try await server.kubectl("apply", "-f", "@input", input: """
            apiVersion: v1
            kind: Pod
            metadata: {name: web, labels: {app: web, tier: front}}
            spec:
              nodeName: edge-1
              containers: [{name: c, image: busybox}]
            ---
            apiVersion: v1
            kind: Service
            metadata: {name: web}
            spec: {selector: {app: web}, ports: [{port: 80}]}
            ---
            apiVersion: v1
            kind: Endpoints
            metadata: {name: web}
            subsets: [{addresses: [{ip: 192.0.2.7}], ports: [{port: 80}]}]
            ---
            apiVersion: v1
            kind: Service
            metadata: {name: other}
            spec: {selector: {app: web, tier: back}, ports: [{port: 81}]}
            ---
            apiVersion: v1
            kind: Service
            metadata: {name: external}
            spec: {ports: [{port: 82}]}
            """)
        #expect(applied.status == 0, "\(applied.output)")
        let first = try await collect(3, from: meta, lane: .state)
        #expect(Set(first.map { "\($0.router.operation) \($0.router.resource)" }) == ["insert default/pod/web", "insert default/service/web", "insert default/endpoints/web"])

        // New endpoints follow; a selector that no longer matches takes the Service and its
        // Endpoints away from the node.
        let endpoints = try await server.kubectl("patch", "endpoints", "web", "--type", "merge", "-p", #"{"subsets":[{"addresses":[{"ip":"192.0.2.8"}],"ports":[{"port":80}]}]}"#)
        #expect(endpoints.status == 0, "\(endpoints.output)")
        let update = try await collect(1, from: meta, lane: .state)
        #expect(update.first?.router.resource == "default/endpoints/web" && update.first.map { String(buffer: $0.content).contains("192.0.2.8") } == true)
        let reselected = try await server.kubectl("patch", "service", "web", "--type", "merge", "-p", #"{"spec":{"selector":{"app":"api"}}}"#)
        #expect(reselected.status == 0, "\(reselected.output)")
        let deletes = try await collect(2, from: meta, lane: .state)
        #expect(Set(deletes.map { "\($0.router.operation) \($0.router.resource)" }) == ["delete default/service/web", "delete default/endpoints/web"])
        #expect(meta.pollMessage(on: .state) == nil)

        await edge.stop()
        await controller.stop()
        await fixture.stop()
        await server.server.stop()
        removeTemporaryDirectory(server.directory)
        removeTemporaryDirectory(fixture.directory)
    }
}
