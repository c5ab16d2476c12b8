import CloudHub
import EdgeHub
import Foundation
import KubeModel
import NIOCore
import Node
import Synchronization
import TestSupport
import Testing
import Transport

/// An edge node that runs pods: EdgeHub, MetaManager and Edged on one bus against a real
/// CloudHub, with the process runtime under the fixture's directory.
struct PodNode {
    let bus = MessageBus()
    let store: MetaStore
    let meta: MetaManager
    let hub: EdgeHub
    let edged: Edged

    init(fixture: HubFixture, node: String = "edge-1", backoff: RestartBackoff = RestartBackoff(initial: .milliseconds(200)), clock: any ServiceClock = .system) throws {
        store = try MetaStore(configuration: .init(path: fixture.directory + "/\(node)-meta.db"))
        meta = MetaManager(store: store, bus: bus)
        hub = try EdgeHub(configuration: fixture.edgeConfiguration(node, token: nil), bus: bus, group: testGroup)
        edged = try Edged(configuration: .init(nodeName: node, rootDirectory: fixture.directory + "/\(node)-edged", syncInterval: .milliseconds(200),
                                               backoff: backoff, nodeStatusUpdateFrequency: .seconds(3600), clock: clock),
                          store: store, bus: bus)
        meta.start()
        edged.start()
        hub.start()
    }

    func stop() async {
        await hub.stop()
        await edged.stop()
        await meta.stop()
    }
}

/// The pod statuses the cloud received, newest last.
final class ReceivedStatuses: Sendable {
    private let items = Mutex<[(resource: String, json: JSONValue)]>([])
    private let task = Mutex<Task<Void, Never>?>(nil)

    init(_ hub: CloudHub) {
        let listener = Task { [self] in
            for await incoming in hub.incoming where incoming.message.router.resource.contains("/podstatus/") {
                guard let json = try? JSONValue(parsing: String(buffer: incoming.message.content)) else { continue }
                items.withLock { $0.append((incoming.message.router.resource, json)) }
            }
        }
        task.withLock { $0 = listener }
    }

    /// The newest status of `resource`.
    func latest(_ resource: String) -> JSONValue? { items.withLock { $0.last { $0.resource == resource }?.json } }
    func count(_ resource: String) -> Int { items.withLock { $0.filter { $0.resource == resource }.count } }
    func cancel() { task.withLock { $0?.cancel() } }
}

@Suite(.serialized) struct EdgedTests {
    private func condition(_ pod: JSONValue?, _ type: String) -> String? {
        pod?[path: ["status", "conditions"]]?.arrayValue?.first { $0["type"] == .string(type) }?["status"]?.stringValue
    }

    /// Runs `body` with an edge node that runs pods, the statuses its cloud receives, and a way
    /// to send it objects from the cloud; cleans up after.
    private func withPodNode(backoff: RestartBackoff = RestartBackoff(initial: .milliseconds(200)), clock: any ServiceClock = .system,
                             _ body: (HubFixture, PodNode, ReceivedStatuses, _ send: (String, String, String) async throws -> Void) async throws -> Void) async throws {
        let fixture = try await HubFixture()
        defer { removeTemporaryDirectory(fixture.directory) }
        _ = try fixture.issueCredentials(for: "edge-1")
        let received = ReceivedStatuses(fixture.hub)
        defer { received.cancel() }
        let node = try PodNode(fixture: fixture, backoff: backoff, clock: clock)
        var failure: (any Error)?
        do {
            try await body(fixture, node, received) { operation, resource, json in
                try await fixture.hub.send(objectMessage(operation, resource, json), to: "edge-1", on: .state, delivery: .reliable)
            }
        } catch {
            failure = error
        }
        await node.stop()
        for id in await node.edged.runtime.containers() { await node.edged.runtime.remove(id) }
        if let failure { throw failure }
    }

    @Test func aPodFromTheCloudRunsBecomesReadyReportsItsStatusAndGoesWhenDeleted() async throws {
        try await withPodNode { fixture, node, received, send in
            let port = freeLoopbackPort()
            let mnt = fixture.directory + "/mnt"
            try await send("insert", "default/configmap/web-config", #"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"web-config","namespace":"default","resourceVersion":"3"},"data":{"GREETING":"hello from the cloud"}}"#)
            try await send("insert", "default/secret/web-secret", #"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"web-secret","namespace":"default","resourceVersion":"4"},"data":{"password":"czNjcmV0"}}"#)
            let pod = """
                {"apiVersion":"v1","kind":"Pod","metadata":{"name":"web","namespace":"default","uid":"uid-web","resourceVersion":"5"},
                 "spec":{"nodeName":"edge-1","terminationGracePeriodSeconds":2,
                  "volumes":[{"name":"site","emptyDir":{}},{"name":"secret","secret":{"secretName":"web-secret","defaultMode":256}}],
                  "initContainers":[{"name":"prepare","image":"busybox","command":["/bin/sh","-c","echo '<h1>edge</h1>' > \(mnt)/site/index.html"],
                                     "volumeMounts":[{"name":"site","mountPath":"\(mnt)/site"}]}],
                  "containers":[
                    {"name":"web","image":"python","command":["/bin/sh","-c","echo \\"$GREETING\\"; exec python3 -m http.server \(port) --bind 127.0.0.1 --directory \(mnt)/site"],
                     "envFrom":[{"configMapRef":{"name":"web-config"}}],"volumeMounts":[{"name":"site","mountPath":"\(mnt)/site","readOnly":true}],
                     "readinessProbe":{"httpGet":{"path":"/index.html","port":\(port)},"periodSeconds":1}},
                    {"name":"sidecar","image":"busybox","command":["/bin/sh","-c","cat \(mnt)/secret/password; echo; exec sleep 60"],
                     "volumeMounts":[{"name":"secret","mountPath":"\(mnt)/secret"}]}]}}
                """
            try await send("insert", "default/pod/web", pod)

            // Running and Ready, as the cloud sees it.
            #expect(await eventually(timeout: .seconds(30)) {
                let status = received.latest("default/podstatus/web")
                return status?[path: ["status", "phase"]] == .string("Running") && condition(status, "Ready") == "True"
            }, "\(received.latest("default/podstatus/web").map { "\($0)" } ?? "no status")")
            let status = try #require(received.latest("default/podstatus/web"))
            #expect(status[path: ["metadata", "uid"]] == .string("uid-web") && status["kind"] == .string("Pod"))
            let statuses = status[path: ["status", "containerStatuses"]]?.arrayValue ?? []
            #expect(statuses.count == 2 && statuses.allSatisfy { $0["ready"] == .bool(true) && $0["restartCount"] == .number("0") }, "\(statuses)")
            #expect(status[path: ["status", "initContainerStatuses"]]?.arrayValue?.first?[path: ["state", "terminated", "reason"]] == .string("Completed"))
            let runtime = node.edged.runtime
            let webLog = containerLogText(runtime.logPath(of: ContainerID(podUID: "uid-web", name: "web", attempt: 0))) ?? ""
            #expect(webLog.hasPrefix("hello from the cloud\n"), "\(webLog)")
            let page = try await httpRequest(port: port, path: "/index.html").text()
            #expect(page == "<h1>edge</h1>\n")
            #expect(await eventually {
                containerLogText(runtime.logPath(of: ContainerID(podUID: "uid-web", name: "sidecar", attempt: 0))) == "s3cret\n"
            })
            // Only changes are reported: passes over an unchanged pod send nothing.
            let settled = node.edged.statistics
            #expect(await eventually { node.edged.statistics.syncs >= settled.syncs + 3 })
            #expect(node.edged.statistics.statusReports == settled.statusReports, "\(settled) then \(node.edged.statistics)")
            #expect(received.count("default/podstatus/web") <= node.edged.statistics.statusReports)

            // Deleted in the cloud: stopped, and its containers and volumes are gone.
            try await send("delete", "default/pod/web", #"{"metadata":{"name":"web","namespace":"default","resourceVersion":"6"}}"#)
            #expect(await eventually(timeout: .seconds(15)) { await runtime.containers().isEmpty })
            #expect(await eventually { !FileManager.default.fileExists(atPath: fixture.directory + "/edge-1-edged/pods/uid-web") })
            #expect((try? await httpRequest(port: port, path: "/index.html")) == nil, "the server is gone")
            #expect(node.edged.statistics.podsRemoved == 1 && node.edged.statistics.pods == 0, "\(node.edged.statistics)")
        }
    }

    @Test func edgedRestartsACrashingContainerWhenItsBackOffHasPassedOnItsClock() async throws {
        // Kubelet's default back-off (10 s) on a clock the test moves one sync interval at a time.
        let clock = ManualClock()
        let startedAt = ContinuousClock.now
        try await withPodNode(backoff: RestartBackoff(), clock: clock) { _, node, _, send in
            try await send("insert", "default/pod/crash", #"{"metadata":{"name":"crash","namespace":"default","uid":"uid-crash","resourceVersion":"1"},"spec":{"nodeName":"edge-1","containers":[{"name":"c","image":"x","command":["/bin/sh","-c","exit 3"]}]}}"#)
            #expect(await eventually(timeout: .seconds(20)) { await node.edged.runtime.containers().contains { $0.podUID == "uid-crash" } })
            var restarted = false
            while !restarted, clock.monotonic < .seconds(60) {
                clock.advance(by: .milliseconds(200))
                // The sync pass that this step woke has run once the loop sleeps from the new time.
                #expect(await clock.waitForSleeper(until: clock.monotonic + .milliseconds(200)))
                restarted = await node.edged.runtime.containers().contains { $0.podUID == "uid-crash" && $0.attempt == 1 }
            }
            // The container ended a moment after the clock started (at most the test's real time
            // so far); it restarts 10 s after its end, at the first pass past that.
            let realTime = startedAt.duration(to: .now)
            #expect(restarted)
            #expect(clock.monotonic >= .seconds(10), "restarted before its back-off")
            #expect(clock.monotonic <= .seconds(10) + realTime + .milliseconds(200), "restarted \(clock.monotonic) into the clock, \(realTime) of real time")
        }
    }

    @Test func podsOfOtherNodesAreNotRunAndAConfigMapChangeReachesAWaitingPod() async throws {
        try await withPodNode { fixture, node, received, send in
            try await send("insert", "default/pod/elsewhere", #"{"metadata":{"name":"elsewhere","namespace":"default","uid":"uid-else","resourceVersion":"1"},"spec":{"nodeName":"edge-2","containers":[{"name":"c","image":"x","command":["/bin/sleep","30"]}]}}"#)
            try await send("insert", "default/pod/needs-config", #"{"metadata":{"name":"needs-config","namespace":"default","uid":"uid-needs","resourceVersion":"2"},"spec":{"nodeName":"edge-1","containers":[{"name":"c","image":"x","command":["/bin/sh","-c","echo $MODE; exec sleep 30"],"env":[{"name":"MODE","valueFrom":{"configMapKeyRef":{"name":"late","key":"mode"}}}]}]}}"#)
            #expect(await eventually(timeout: .seconds(20)) {
                received.latest("default/podstatus/needs-config")?[path: ["status", "containerStatuses"]]?.arrayValue?.first?[path: ["state", "waiting", "reason"]] == .string("CreateContainerConfigError")
            })
            try await send("insert", "default/configmap/late", #"{"metadata":{"name":"late","namespace":"default","resourceVersion":"3"},"data":{"mode":"arrived"}}"#)
            #expect(await eventually(timeout: .seconds(20)) { received.latest("default/podstatus/needs-config")?[path: ["status", "phase"]] == .string("Running") })
            #expect(await node.edged.runtime.containers().map(\.podUID) == ["uid-needs"], "the other node's pod never ran")
            #expect(received.latest("default/podstatus/elsewhere") == nil)
        }
    }

    @Test func containersOfAPodNoLongerStoredAreStoppedAndRemovedOnStart() async throws {
        // As after a delete stored just before a crash: the pod is gone, its container still runs.
        let fixture = try await HubFixture()
        defer { removeTemporaryDirectory(fixture.directory) }
        _ = try fixture.issueCredentials(for: "edge-1")
        let leftover = try ProcessRuntime(root: fixture.directory + "/edge-1-edged/containers")
        defer { for id in leftover.containers() { leftover.remove(id) } }
        let ghost = ContainerID(podUID: "uid-ghost", name: "app", attempt: 0)
        try leftover.start(ContainerLaunch(id: ghost, command: ["/bin/sleep", "60"]))
        let node = try PodNode(fixture: fixture)
        #expect(await eventually(timeout: .seconds(15)) { leftover.containers().isEmpty }, "\(leftover.containers())")
        #expect(node.edged.statistics.podsRemoved == 1)
        await node.stop()
    }
}
