import CloudHub
import Foundation
import KubeModel
import NIOCore
import Node
import Synchronization
import TestSupport
import Testing
import Transport

/// What Edged asks of the cloud over the channel, with a real CloudHub standing for the cloud's
/// controller: service-account tokens for projected volumes (renewed at 80 % of their life,
/// kept while the cloud does not answer, until they expire) and the final delete of a pod it
/// stopped after the cloud deleted it gracefully.
@Suite(.serialized) struct EdgedCloudRequestTests {
    /// The cloud's side: answers token requests with short-lived tokens while `issuing`, and
    /// records every request and final delete.
    final class Cloud: Sendable {
        struct TokenRequest: Sendable {
            var resource: String
            var body: JSONValue
            var at: Date
        }
        let issuing = Mutex(true)
        let tokenLife: Int64
        let tokenRequests = Mutex<[TokenRequest]>([])
        let finalDeletes = Mutex<[(resource: String, body: JSONValue, at: Date)]>([])
        /// The newest report of each event, by resource.
        let events = Mutex<[String: JSONValue]>([:])
        private let task = Mutex<Task<Void, Never>?>(nil)

        init(_ hub: CloudHub, tokenLife: Int64) {
            self.tokenLife = tokenLife
            let listener = Task { [self] in
                for await incoming in hub.incoming {
                    let router = incoming.message.router
                    let body = (try? JSONValue(parsing: incoming.message.content.readableBytesView)) ?? .null
                    if router.operation == "query", router.resource.contains("/serviceaccounttoken/") {
                        let count = tokenRequests.withLock { requests in
                            requests.append(TokenRequest(resource: router.resource, body: body, at: Date()))
                            return requests.count
                        }
                        var answer = incoming.message.makeResponse(content: ByteBuffer(string: issuing.withLock { $0 }
                            ? JSONValue.object(JSONObject([("status", .object(JSONObject([("token", .string(Self.token(number: count, life: tokenLife)))])))])).serialized
                            : "the cloud refuses"))
                        if !issuing.withLock({ $0 }) { answer.router.operation = "error" }
                        try? await hub.send(answer, to: incoming.node, on: incoming.lane, delivery: .bestEffort)
                    } else if router.operation == "delete", router.resource.contains("/pod/") {
                        finalDeletes.withLock { $0.append((router.resource, body, Date())) }
                    } else if router.resource.contains("/event/") {
                        events.withLock { $0[router.resource] = body }
                    }
                }
            }
            task.withLock { $0 = listener }
        }

        /// A JWT (unsigned: the edge does not verify it) issued now, numbered.
        static func token(number: Int, life: Int64) -> String {
            func encoded(_ text: String) -> String {
                Data(text.utf8).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
                    .replacingOccurrences(of: "=", with: "")
            }
            let now = Int64(Date().timeIntervalSince1970)
            return encoded(#"{"alg":"ES256"}"#) + "." + encoded(#"{"iat":\#(now),"exp":\#(now + life),"n":\#(number)}"#) + ".c2ln"
        }

        /// The `n` claim of a token.
        static func number(of token: String) -> Int? {
            let parts = token.split(separator: ".")
            guard parts.count == 3 else { return nil }
            var payload = String(parts[1]).replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
            payload += String(repeating: "=", count: (4 - payload.count % 4) % 4)
            return Data(base64Encoded: payload).flatMap { try? JSONValue(parsing: Array($0)) }?["n"]?.int64Value.map(Int.init)
        }

        func cancel() { task.withLock { $0?.cancel() } }
    }

    private func withNode(tokenLife: Int64 = 10, _ body: (HubFixture, PodNode, Cloud, _ send: (String, String, String) async throws -> Void) async throws -> Void) async throws {
        let fixture = try await HubFixture()
        defer { removeTemporaryDirectory(fixture.directory) }
        _ = try fixture.issueCredentials(for: "edge-1")
        let cloud = Cloud(fixture.hub, tokenLife: tokenLife)
        defer { cloud.cancel() }
        let node = try PodNode(fixture: fixture)
        var failure: (any Error)?
        do {
            try await body(fixture, node, cloud) { operation, resource, json in
                try await fixture.hub.send(objectMessage(operation, resource, json), to: "edge-1", on: .state, delivery: .reliable)
            }
        } catch {
            failure = error
        }
        await node.stop()
        for id in await node.edged.runtime.containers() { await node.edged.runtime.remove(id) }
        if let failure { throw failure }
    }

    @Test func aProjectedTokenComesFromTheCloudIsRenewedAtEightyPercentAndIsKeptWhileTheCloudDoesNotAnswer() async throws {
        try await withNode(tokenLife: 10) { fixture, node, cloud, send in
            let pod = """
                {"apiVersion":"v1","kind":"Pod","metadata":{"name":"reader","namespace":"apps","uid":"uid-reader","resourceVersion":"5"},
                 "spec":{"nodeName":"edge-1","serviceAccountName":"robot","terminationGracePeriodSeconds":1,
                  "volumes":[{"name":"kube-api-access-abcde","projected":{"defaultMode":420,"sources":[
                     {"serviceAccountToken":{"path":"token","expirationSeconds":3607,"audience":"vault"}},
                     {"downwardAPI":{"items":[{"path":"namespace","fieldRef":{"apiVersion":"v1","fieldPath":"metadata.namespace"}}]}}]}}],
                  "containers":[{"name":"main","image":"busybox","command":["/bin/sh","-c","exec sleep 3600"]}]}}
                """
            try await send("insert", "apps/pod/reader", pod)
            let volume = fixture.directory + "/edge-1-edged/pods/uid-reader/volumes/kube-api-access-abcde"
            let current = { (try? String(contentsOfFile: volume + "/token", encoding: .utf8)).flatMap(Cloud.number(of:)) }

            // The first token, asked for the pod's account, bound to the pod, with its audience and life.
            #expect(await eventually(timeout: .seconds(20)) { current() == 1 }, "\(node.edged.statistics)")
            #expect((try? String(contentsOfFile: volume + "/namespace", encoding: .utf8)) == "apps")
            let first = try #require(cloud.tokenRequests.withLock { $0.first })
            #expect(first.resource == "apps/serviceaccounttoken/robot")
            #expect(first.body[path: ["spec", "boundObjectRef"]] == .object(JSONObject([
                ("kind", .string("Pod")), ("apiVersion", .string("v1")), ("name", .string("reader")), ("uid", .string("uid-reader")),
            ])))
            #expect(first.body[path: ["spec", "audiences"]] == .array([.string("vault")]) && first.body[path: ["spec", "expirationSeconds"]] == .integer(3607))
            #expect(await eventually(timeout: .seconds(20)) { await node.edged.runtime.containers(ofPod: "uid-reader").count == 1 })

            // Renewed once 80 % of its 10 s have passed, and not before.
            #expect(await eventually(timeout: .seconds(20)) { current() == 2 })
            let requests = cloud.tokenRequests.withLock { $0 }
            #expect(requests.count >= 2)
            #expect(requests[1].at.timeIntervalSince(requests[0].at) >= 7, "renewed \(requests[1].at.timeIntervalSince(requests[0].at)) s after the first")

            // The cloud stops answering: the held token stays in the volume until it expires,
            // and the container keeps running after that too; requests go on, spaced out.
            cloud.issuing.withLock { $0 = false }
            let refusedFrom = cloud.tokenRequests.withLock { $0.count }
            #expect(await eventually(timeout: .seconds(20)) { node.edged.statistics.tokenFailures >= 1 })
            let expiry = try #require(ServiceAccountTokenManager.Token(jwt: try String(contentsOfFile: volume + "/token", encoding: .utf8))).expires
            try await Task.sleep(for: .seconds(max(0, expiry.timeIntervalSinceNow) + 1.5))
            #expect(current() == 2, "the last token stays in place")
            let containers = await node.edged.runtime.containers(ofPod: "uid-reader")
            #expect(containers.count == 1, "\(containers)")
            if let id = containers.first, case .running = await node.edged.runtime.state(of: id) {} else {
                Issue.record("the container stopped without its token")
            }
            let refusals = cloud.tokenRequests.withLock { $0.count } - refusedFrom
            #expect(refusals >= 1 && refusals <= 3, "failed requests are retried every 10 s, not every pass: \(refusals)")

            // The cloud answers again: a new token.
            cloud.issuing.withLock { $0 = true }
            #expect(await eventually(timeout: .seconds(30)) { (current() ?? 0) > 2 })
        }
    }

    @Test func aPodTheCloudDeletesGracefullyIsStoppedAndThenItsFinalDeleteGoesToTheCloud() async throws {
        try await withNode { _, node, cloud, send in
            let pod = { (extra: String, version: Int) in """
                {"apiVersion":"v1","kind":"Pod","metadata":{"name":"worker","namespace":"default","uid":"uid-worker","resourceVersion":"\(version)"\(extra)},
                 "spec":{"nodeName":"edge-1","terminationGracePeriodSeconds":30,
                  "containers":[{"name":"main","image":"busybox","command":["/bin/sh","-c","trap 'sleep 1; exit 0' TERM; while true; do sleep 0.2; done"]}]}}
                """ }
            try await send("insert", "default/pod/worker", pod("", 5))
            #expect(await eventually(timeout: .seconds(20)) { await node.edged.runtime.containers(ofPod: "uid-worker").count == 1 })
            try await Task.sleep(for: .milliseconds(500))
            #expect(cloud.finalDeletes.withLock { $0.isEmpty }, "a running pod is not deleted")

            // Marked for deletion with 3 s: stopped (its TERM trap takes 1 s), then the final delete.
            try await send("update", "default/pod/worker", pod(#","deletionTimestamp":"2026-01-01T00:00:03Z","deletionGracePeriodSeconds":3"#, 6))
            #expect(await eventually(timeout: .seconds(20)) { cloud.finalDeletes.withLock { !$0.isEmpty } }, "\(node.edged.statistics)")
            #expect(await node.edged.runtime.containers(ofPod: "uid-worker").isEmpty, "the final delete comes after the containers are gone")
            let delete = try #require(cloud.finalDeletes.withLock { $0.first })
            #expect(delete.resource == "default/pod/worker")
            #expect(delete.body["gracePeriodSeconds"] == .integer(0) && delete.body[path: ["preconditions", "uid"]] == .string("uid-worker"), "\(delete.body)")

            // Kubelet's events about it reached the cloud: created, started, stopped.
            let reasons = cloud.events.withLock { events in
                Set(events.values.filter { $0[path: ["involvedObject", "name"]] == .string("worker") }.compactMap { $0["reason"]?.stringValue })
            }
            #expect(reasons.isSuperset(of: ["Created", "Started", "Killing"]), "\(reasons)")

            // Not sent again while the cloud is removing it; the cloud's delete ends it.
            try await Task.sleep(for: .seconds(1))
            #expect(cloud.finalDeletes.withLock { $0.count } == 1)
            try await send("delete", "default/pod/worker", pod("", 7))
            #expect(await eventually(timeout: .seconds(10)) { node.edged.statistics.pods == 0 })
            #expect(node.edged.statistics.finalDeletes == 1, "\(node.edged.statistics)")
        }
    }
}

/// Kubelet's event aggregation and spam filter, on the recorder's own clock.
@Suite struct PodEventRecorderTests {
    let pod = Kube.Pod(json: try! JSONValue(parsing: #"{"metadata":{"name":"web","namespace":"apps","uid":"u-1"},"spec":{"initContainers":[{"name":"setup"}],"containers":[{"name":"main"}]}}"#))

    @Test func aRepeatRaisesTheCountOfTheSameEventAndNewEventsAreLimitedPerPod() throws {
        let recorder = PodEventRecorder(node: "edge-1", burst: 3, refill: 60)
        let start = Date(timeIntervalSince1970: 1_800_000_000)
        recorder.record(pod, container: "main", .warning, reason: "BackOff", message: "Back-off restarting failed container main", now: start)
        recorder.record(pod, container: "main", .warning, reason: "BackOff", message: "Back-off restarting failed container main", now: start.addingTimeInterval(5))
        recorder.record(pod, container: "setup", .normal, reason: "Started", message: "Started container setup", now: start)
        let first = recorder.drain()
        #expect(first.count == 2)
        let backOff = try #require(first.first { $0["reason"] == .string("BackOff") })
        #expect(backOff["count"] == .integer(2) && backOff["type"] == .string("Warning"))
        #expect(backOff["firstTimestamp"] == .string(start.formatted(.iso8601)) && backOff["lastTimestamp"] == .string(start.addingTimeInterval(5).formatted(.iso8601)))
        #expect(backOff["involvedObject"] == .object(JSONObject([
            ("kind", .string("Pod")), ("namespace", .string("apps")), ("name", .string("web")), ("uid", .string("u-1")), ("apiVersion", .string("v1")),
            ("fieldPath", .string("spec.containers{main}")),
        ])))
        #expect(backOff[path: ["source", "host"]] == .string("edge-1") && backOff[path: ["metadata", "namespace"]] == .string("apps"))
        #expect(first.first { $0["reason"] == .string("Started") }?[path: ["involvedObject", "fieldPath"]] == .string("spec.initContainers{setup}"))
        // Nothing changed: nothing to send. A repeat: the same event (name) with the new count.
        #expect(recorder.drain().isEmpty)
        recorder.record(pod, container: "main", .warning, reason: "BackOff", message: "Back-off restarting failed container main", now: start.addingTimeInterval(9))
        let again = recorder.drain()
        #expect(again.count == 1 && again.first?["count"] == .integer(3) && again.first?[path: ["metadata", "name"]] == backOff[path: ["metadata", "name"]])

        // Three new events were allowed (burst 3): the fourth is dropped until a minute refills one.
        recorder.record(pod, .normal, reason: "Third", message: "three", now: start.addingTimeInterval(10))
        recorder.record(pod, .normal, reason: "Fourth", message: "four", now: start.addingTimeInterval(11))
        #expect(recorder.drain().map { $0["reason"] } == [.string("Third")] && recorder.dropped == 1)
        recorder.record(pod, .normal, reason: "Fifth", message: "five", now: start.addingTimeInterval(75))
        #expect(recorder.drain().map { $0["reason"] } == [.string("Fifth")])
    }
}
