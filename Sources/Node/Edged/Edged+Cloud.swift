import Foundation
import KubeModel
import NIOCore
import Transport

/// What Edged asks of the cloud itself, as kubelet asks its API server: service-account tokens
/// for projected volumes, the final delete of a pod it has stopped, and its events.
extension Edged {
    /// Asks the cloud for each token that is due (``ServiceAccountTokenManager/due(now:)``), one
    /// request at a time, then sleeps until the next is due or a volume wants a new one (in real
    /// time: tokens live in it, whatever clock the sync passes use); wakes the sync loop when a
    /// new token arrived. Nothing runs while no token is due.
    func tokenLoop() async {
        repeat {
            var received = false
            for request in tokens.due(now: Date()) {
                received = await fetchToken(request) || received
            }
            if received { wake.signal() }
        } while await tokenWake.wait(for: Self.untilNextDue(tokens.nextDue()))
    }

    /// How long the token loop may sleep: until `next` (at least 10 ms), at most an hour.
    static func untilNextDue(_ next: Date?) -> Duration {
        guard let next else { return .seconds(3600) }
        return .milliseconds(Int64(min(3600, max(0.01, next.timeIntervalSinceNow)) * 1000))
    }

    /// `query {namespace}/serviceaccounttoken/{account}` with a TokenRequest bound to the pod,
    /// to EdgeHub (the cloud answers with the TokenRequest and its token); whether a token came.
    private func fetchToken(_ request: ServiceAccountTokenManager.Request) async -> Bool {
        var ask = Message(router: MessageRouter(
            source: Self.moduleName, group: MessageRouter.Group.resource, operation: MessageRouter.Operation.query,
            resource: "\(request.namespace)/serviceaccounttoken/\(request.account)"), content: ByteBuffer(string: request.tokenRequest.serialized))
        ask.header.sync = true
        do {
            let answer = try await endpoint.request(ask, toGroup: Self.hubGroup, on: .request, timeout: configuration.tokenRequestTimeout)
            guard answer.router.operation != MessageRouter.Operation.error else { throw CloudRefusal(text: String(buffer: answer.content)) }
            let review = try JSONValue(parsing: answer.content.readableBytesView)
            guard let token = review[path: ["status", "token"]]?.stringValue else { throw CloudRefusal(text: "the answer holds no status.token") }
            let taken = tokens.received(token, for: request, now: Date())
            if taken { counters.withLock { $0.tokensReceived += 1 } }
            return taken
        } catch {
            counters.withLock { $0.tokenFailures += 1 }
            tokens.failed(request, reason: "\(error)", now: Date())
            logger.debug("no service-account token from the cloud", metadata: [
                "account": "\(request.namespace)/\(request.account)", "pod": "\(request.podName)", "error": "\(error)",
            ])
            return false
        }
    }

    /// The kubelet's final delete of a pod it has stopped: `delete {namespace}/pod/{name}` with
    /// DeleteOptions (grace period 0, the pod's uid as precondition), reliable, to EdgeHub. Sent
    /// again after ``Configuration/finalDeleteResendInterval`` while the pod is still stored.
    func sendFinalDelete(_ pod: Kube.Pod) async {
        let id = PodWorker.podID(pod)
        let now = configuration.clock.monotonic
        let due = finalDeletes.withLock { sent -> Bool in
            if let last = sent[id], now - last < configuration.finalDeleteResendInterval { return false }
            sent[id] = now
            return true
        }
        guard due else { return }
        var options = JSONObject([("apiVersion", .string("v1")), ("kind", .string("DeleteOptions")), ("gracePeriodSeconds", .integer(0))])
        if let uid = pod.uid { options["preconditions"] = .object(JSONObject([("uid", .string(uid))])) }
        let namespace = pod.namespace.isEmpty ? "default" : pod.namespace
        let message = Message(router: MessageRouter(
            source: Self.moduleName, group: MessageRouter.Group.resource, operation: MessageRouter.Operation.delete,
            resource: "\(namespace)/pod/\(pod.name)"), content: ByteBuffer(string: JSONValue.object(options).serialized))
        do {
            try await endpoint.send(message, toGroup: Self.hubGroup, on: .state)
            counters.withLock { $0.finalDeletes += 1 }
            logger.info("pod stopped; asked the cloud to remove it", metadata: ["pod": "\(pod.key)"])
        } catch {
            finalDeletes.withLock { $0[id] = nil }
            logger.warning("could not send a pod's final delete", metadata: ["pod": "\(pod.key)", "error": "\(error)"])
        }
    }

    /// Sends the events recorded or counted again since the last pass: `update
    /// {namespace}/event/{name}` with the whole Event, on the state lane, where EdgeHub keeps
    /// only the newest of each event queued (a count that rose twice while offline goes once).
    func sendEvents() async {
        for event in events.drain() {
            guard let name = event[path: ["metadata", "name"]]?.stringValue, let namespace = event[path: ["metadata", "namespace"]]?.stringValue else { continue }
            let message = Message(router: MessageRouter(
                source: Self.moduleName, group: MessageRouter.Group.resource, operation: MessageRouter.Operation.update,
                resource: "\(namespace)/event/\(name)"), content: ByteBuffer(string: event.serialized))
            do {
                try await endpoint.send(message, toGroup: Self.hubGroup, on: .state)
                counters.withLock { $0.eventsSent += 1 }
            } catch {
                logger.debug("could not send an event", metadata: ["event": "\(namespace)/\(name)", "error": "\(error)"])
            }
        }
    }

    /// EdgeHub's group on the bus.
    static let hubGroup = "hub"
}

/// The cloud's refusal of a request, in its words.
struct CloudRefusal: Error, CustomStringConvertible {
    var text: String
    var description: String { text }
}
