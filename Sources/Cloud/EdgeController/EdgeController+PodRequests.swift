import CloudHub
import KubeModel
import NIOCore
import Transport

/// What an edge's Edged asks of the cloud for its pods, as a kubelet asks its API server:
/// the final delete of a pod it stopped, service-account tokens bound to its pods, and Events
/// about its pods. A node may do each only for a pod bound to it (the Node authorizer's rule).
extension EdgeController {
    /// `delete {namespace}/pod/{name}`: the node stopped the pod it was deleting; the pod is
    /// removed with grace period 0 and the node's uid precondition (a pod of the same name
    /// created since is not touched). Nothing is answered: the pod's removal reaches the node.
    func handleFinalDelete(_ incoming: NodeMessage, namespace: String, name: String) async {
        guard let pod = pods.get(namespace: namespace, name: name), pod[path: ["spec", "nodeName"]]?.stringValue == incoming.node else {
            return  // gone already, or not this node's
        }
        let options = (try? JSONValue(parsing: incoming.message.content.readableBytesView)) ?? .null
        var deleteOptions = JSONObject([("apiVersion", .string("v1")), ("kind", .string("DeleteOptions")), ("gracePeriodSeconds", .integer(0))])
        let uid = options[path: ["preconditions", "uid"]]?.stringValue ?? pod[path: ["metadata", "uid"]]?.stringValue
        if let uid { deleteOptions["preconditions"] = .object(JSONObject([("uid", .string(uid))])) }
        do {
            try await client.delete(APIResource(Kube.Pod.self), namespace: namespace, name: name, options: .object(deleteOptions))
            state.withLock { $0.counters.finalDeletes += 1 }
        } catch let error as APIError where error.code == 404 || error.code == 409 {
            // Removed meanwhile, or a newer pod of the name: nothing of the node's is left.
        } catch {
            state.withLock { $0.counters.failures += 1 }
            logger.warning("cannot remove a pod its node stopped", metadata: ["pod": "\(namespace)/\(name)", "node": "\(incoming.node)", "error": "\(error)"])
        }
    }

    /// `query {namespace}/serviceaccounttoken/{account}` with a TokenRequest: answered with the
    /// API server's TokenRequest (its `status.token`) when the request is bound to a pod of this
    /// node that runs as that account; with an `error` naming the reason otherwise.
    func handleTokenRequest(_ incoming: NodeMessage, namespace: String, account: String) async {
        let answer: Result<JSONValue, TokenRequestRefusal>
        if let request = try? JSONValue(parsing: incoming.message.content.readableBytesView) {
            answer = await issueToken(request, node: incoming.node, namespace: namespace, account: account)
        } else {
            answer = .failure(TokenRequestRefusal(text: "the request is not a JSON TokenRequest"))
        }
        var response: Message
        switch answer {
        case .success(let review):
            state.withLock { $0.counters.tokensIssued += 1 }
            response = incoming.message.makeResponse(content: ByteBuffer(string: review.serialized))
        case .failure(let refusal):
            state.withLock { $0.counters.tokenRequestsRefused += 1 }
            logger.info("refused a node's token request", metadata: ["node": "\(incoming.node)", "account": "\(namespace)/\(account)", "reason": "\(refusal.text)"])
            response = incoming.message.makeResponse(content: ByteBuffer(string: refusal.text))
            response.router.operation = MessageRouter.Operation.error
        }
        response.router.source = "edgecontroller"
        try? await hub.send(response, to: incoming.node, on: incoming.lane, delivery: .bestEffort)
    }

    private func issueToken(_ request: JSONValue, node: String, namespace: String, account: String) async -> Result<JSONValue, TokenRequestRefusal> {
        guard let bound = request[path: ["spec", "boundObjectRef"]], bound["kind"]?.stringValue == "Pod",
              let podName = bound["name"]?.stringValue else {
            return .failure(TokenRequestRefusal(text: "a node may only request tokens bound to one of its pods (spec.boundObjectRef)"))
        }
        guard let pod = pods.get(namespace: namespace, name: podName), pod[path: ["spec", "nodeName"]]?.stringValue == node else {
            return .failure(TokenRequestRefusal(text: "pod \(namespace)/\(podName) is not bound to node \(node)"))
        }
        let uid = pod[path: ["metadata", "uid"]]?.stringValue ?? ""
        if let given = bound["uid"]?.stringValue, !given.isEmpty, given != uid {
            return .failure(TokenRequestRefusal(text: "pod \(namespace)/\(podName) has uid \(uid), not \(given)"))
        }
        let runsAs = [pod[path: ["spec", "serviceAccountName"]]?.stringValue, pod[path: ["spec", "serviceAccount"]]?.stringValue]
            .compactMap { $0 }.first { !$0.isEmpty } ?? "default"
        guard runsAs == account else {
            return .failure(TokenRequestRefusal(text: "pod \(namespace)/\(podName) runs as service account \(runsAs), not \(account)"))
        }
        var spec = JSONObject([("boundObjectRef", .object(JSONObject([
            ("kind", .string("Pod")), ("apiVersion", .string("v1")), ("name", .string(podName)), ("uid", .string(uid)),
        ])))])
        if let audiences = request[path: ["spec", "audiences"]] { spec["audiences"] = audiences }
        if let seconds = request[path: ["spec", "expirationSeconds"]] { spec["expirationSeconds"] = seconds }
        let tokenRequest = JSONValue.object(JSONObject([
            ("apiVersion", .string("authentication.k8s.io/v1")), ("kind", .string("TokenRequest")), ("spec", .object(spec)),
        ]))
        do {
            return .success(try await client.create(Self.serviceAccounts, namespace: namespace, name: account, subresource: "token", tokenRequest))
        } catch {
            return .failure(TokenRequestRefusal(text: "the API server refused the TokenRequest: \(error)"))
        }
    }

    /// `update {namespace}/event/{name}`: a kubelet Event about one of the node's pods (or the
    /// node itself), written as reported (created, or its count raised), with the source set
    /// to the node whatever the edge claimed.
    func handleEvent(_ incoming: NodeMessage, namespace: String, name: String) async {
        guard let reported = try? JSONValue(parsing: incoming.message.content.readableBytesView), let involved = reported["involvedObject"] else {
            state.withLock { $0.counters.eventsRefused += 1 }
            return
        }
        let kind = involved["kind"]?.stringValue
        let allowed: Bool
        if kind == "Pod" {
            let pod = pods.get(namespace: namespace, name: involved["name"]?.stringValue ?? "")
            allowed = involved["namespace"]?.stringValue == namespace && pod?[path: ["spec", "nodeName"]]?.stringValue == incoming.node
                && (involved["uid"]?.stringValue ?? "") == (pod?[path: ["metadata", "uid"]]?.stringValue ?? "")
        } else {
            allowed = kind == "Node" && involved["name"]?.stringValue == incoming.node
        }
        guard allowed else {
            state.withLock { $0.counters.eventsRefused += 1 }
            logger.info("refused an event about an object that is not the node's", metadata: ["node": "\(incoming.node)", "event": "\(namespace)/\(name)"])
            return
        }
        var event = JSONObject([
            ("apiVersion", .string("v1")), ("kind", .string("Event")),
            ("metadata", .object(JSONObject([("name", .string(name)), ("namespace", .string(namespace))]))), ("involvedObject", involved),
            ("source", .object(JSONObject([("component", .string("kubelet")), ("host", .string(incoming.node))]))),
            ("reportingComponent", .string("kubelet")), ("reportingInstance", .string(incoming.node)),
        ])
        for field in ["reason", "message", "type", "firstTimestamp", "lastTimestamp", "count"] {
            if let value = reported[field] { event[field] = value }
        }
        do {
            try await events.write(.object(event))
            state.withLock { $0.counters.eventsWritten += 1 }
        } catch {
            state.withLock { $0.counters.failures += 1 }
            logger.warning("cannot write an event from the edge", metadata: ["node": "\(incoming.node)", "event": "\(namespace)/\(name)", "error": "\(error)"])
        }
    }

    static let serviceAccounts = APIResource(group: "", version: "v1", plural: "serviceaccounts", singular: "serviceaccount",
                                             kind: "ServiceAccount", namespaced: true)
}

/// Why a node's token request was refused.
struct TokenRequestRefusal: Error {
    var text: String
}
