import KubeModel
import NIOCore
import NIOHTTP1
import Synchronization
import Transport

extension APIServer {
    /// The WebSocket subprotocols of `exec` and `attach` served, most preferred first.
    static let channelProtocols = ["v5.channel.k8s.io", "v4.channel.k8s.io"]
    /// The longest WebSocket message a client may send on an exec or attach (stdin data).
    static let maxStreamMessage = 1 << 20
    /// The longest terminal-resize message.
    static let maxResizeMessage = 4 * 1024

    /// The route of a request for a pod's `exec`, `attach` or `portforward`; nil for others.
    static func podStreamRoute(_ head: HTTPRequestHead, resources: [APIResource]) -> APIRoute? {
        let path = RequestURI(head.uri).path
        guard path.hasSuffix("/exec") || path.hasSuffix("/attach") || path.hasSuffix("/portforward"),
              case .resource(let route)? = APIRoute.parse(path: path, resources: resources)?.path,
              route.resource.storageName == "pods", route.key != nil,
              let subresource = route.subresource, ["exec", "attach", "portforward"].contains(subresource) else { return nil }
        return route
    }

    /// `exec`, `attach` and `portforward` of a pod: authorized as `create` on the subresource
    /// (what kube-apiserver requires of WebSocket upgrades too), checked, the node's stream
    /// opened (its refusal is the answer), then upgraded and bridged until either side ends.
    func servePodStream(_ head: HTTPRequestHead, route: APIRoute, user authenticated: UserInfo, writer: ResponseWriter,
                        inbound: inout NIOAsyncChannelInboundStream<HTTPServerRequestPart>.AsyncIterator, channel: any Channel) async throws {
        let key = route.key!
        let subresource = route.subresource!
        let uri = RequestURI(head.uri)
        let opened: NodeStream
        let chosen: String
        let request: NodeStreamRequest
        do {
            let user = try effectiveUser(head, authenticated)
            try authorize(user, RequestAttributes(verb: "create", apiGroup: "", resource: "pods", subresource: subresource, namespace: key.namespace, name: key.name))
            guard head.method == .GET || head.method == .POST else {
                throw APIError(code: 405, reason: "MethodNotAllowed", message: "the server does not allow this method on the requested resource")
            }
            guard subresource != "portforward" else {
                throw APIError(code: 501, reason: "NotImplemented", message: "port forwarding is not served yet")
            }
            let upgrade = head.headers[canonicalForm: "Upgrade"].map { $0.lowercased() }
            guard !upgrade.isEmpty else { throw APIError.badRequest("Upgrade request required") }
            request = try Self.streamRequest(subresource, key: key, uri: uri)
            let (pod, container) = try await podContainer(key, named: uri.query["container"])
            let phase = pod[path: ["status", "phase"]]?.stringValue ?? ""
            if phase == "Succeeded" || phase == "Failed" {
                throw APIError.badRequest("cannot \(subresource) into a container in a completed pod; current phase is \(phase)")
            }
            guard let node = pod[path: ["spec", "nodeName"]]?.stringValue, !node.isEmpty else {
                throw APIError.badRequest("pod \(key.name) does not have a host assigned")
            }
            // The request is valid: now whether this client speaks a protocol served here (an
            // error above reaches kubectl whichever protocol it tried first).
            guard upgrade.contains("websocket") else {
                throw APIError.badRequest("this server upgrades \(subresource) to WebSocket (\(Self.channelProtocols.joined(separator: ", "))) only; SPDY is not served")
            }
            let offered = head.headers[canonicalForm: "Sec-WebSocket-Protocol"].flatMap { $0.split(separator: ",") }.map { $0.trimmingCharacters(in: .whitespaces) }
            guard let protocolName = Self.channelProtocols.first(where: offered.contains) else {
                throw APIError.badRequest("none of the offered subprotocols [\(offered.joined(separator: ", "))] is served; this server speaks \(Self.channelProtocols.joined(separator: ", "))")
            }
            chosen = protocolName
            var located = request
            located.container = container
            located.uid = pod[path: ["metadata", "uid"]]?.stringValue ?? ""
            opened = try await openNodeStream(located, on: node)
        } catch let error as APIError {
            return try await writer.send(error)
        }
        guard let clientKey = head.headers.first(name: "Sec-WebSocket-Key") else {
            return try await writer.send(APIError.badRequest("the WebSocket upgrade has no Sec-WebSocket-Key"))
        }
        var response = HTTPResponseHead(version: .http1_1, status: .switchingProtocols)
        response.headers.add(name: "Upgrade", value: "websocket")
        response.headers.add(name: "Connection", value: "Upgrade")
        response.headers.add(name: "Sec-WebSocket-Accept", value: WebSocketAccept.value(forKey: clientKey))
        response.headers.add(name: "Sec-WebSocket-Protocol", value: chosen)
        try await HTTPHandlerNames.switchProtocols(on: channel, sending: response)
        podStreamCounters.withLock { subresource == "exec" ? ($0.execs += 1) : ($0.attaches += 1) }
        try await bridgeRemoteCommand(opened, outbound: writer.outbound, inbound: &inbound, channel: channel, closeSignal: chosen == "v5.channel.k8s.io")
    }

    /// The node request for an exec or attach URL's query (kube's validation and words).
    static func streamRequest(_ subresource: String, key: ObjectKey, uri: RequestURI) throws(APIError) -> NodeStreamRequest {
        var request = NodeStreamRequest(kind: subresource == "exec" ? .exec : .attach, namespace: key.namespace, pod: key.name)
        let query = uri.query
        request.stdin = try boolean(query, "stdin")
        request.stdout = try boolean(query, "stdout")
        request.stderr = try boolean(query, "stderr")
        request.tty = try boolean(query, "tty")
        request.command = uri.queryItems.filter { $0.name == "command" }.map(\.value)
        guard request.stdin || request.stdout || request.stderr else {
            throw APIError.badRequest("you must specify at least 1 of stdin, stdout, stderr")
        }
        if request.kind == .exec, request.command.isEmpty { throw APIError.badRequest("you must specify at least 1 command") }
        return request
    }

    /// Kubernetes' channel protocol on the client's WebSocket ↔ records on the node's stream,
    /// until the command's status has gone out (then a normal close) or the client leaves (then
    /// the node's stream is reset and the command ends).
    func bridgeRemoteCommand(_ node: NodeStream, outbound: NIOAsyncChannelOutboundWriter<HTTPServerResponsePart>,
                             inbound: inout NIOAsyncChannelInboundStream<HTTPServerRequestPart>.AsyncIterator, channel: any Channel,
                             closeSignal: Bool) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                // Node → client: output, then the status, then a close.
                var decoder = NodeStreamRecords.Decoder(maxLength: 16 << 20)
                do {
                    while let chunk = try await node.read() {
                        decoder.append(chunk.readableBytesView)
                        while let (recordChannel, payload) = try decoder.next() {
                            try await outbound.write(.body(.byteBuffer(WebSocketMessages.channelMessage(recordChannel, ByteBuffer(bytes: payload)))))
                        }
                    }
                    try await outbound.write(.body(.byteBuffer(WebSocketMessages.close(1000))))
                } catch {
                    try? await outbound.write(.body(.byteBuffer(WebSocketMessages.close(1011, reason: "the node's stream ended: \(error)"))))
                }
                channel.close(promise: nil)
            }
            // Client → node, in this task (it owns the connection's inbound side).
            var messages = WebSocketMessages(maxMessageLength: Self.maxStreamMessage)
            reading: while let part = try? await inbound.next() {
                guard case .body(let bytes) = part else { continue }
                do {
                    let (events, replies) = try messages.receive(bytes)
                    for reply in replies { try await outbound.write(.body(.byteBuffer(reply))) }
                    for event in events {
                        switch event {
                        case .close:
                            try? await outbound.write(.body(.byteBuffer(WebSocketMessages.close(1000))))
                            break reading
                        case .message(var data, _):
                            guard let streamChannel = data.readInteger(as: UInt8.self) else { continue }
                            switch streamChannel {
                            case NodeStreamRecords.stdin:
                                try await node.stream.write(Self.record(NodeStreamRecords.stdin, data))
                            case NodeStreamRecords.resize:
                                guard data.readableBytes <= Self.maxResizeMessage else {
                                    podStreamCounters.withLock { $0.refused += 1 }
                                    try? await outbound.write(.body(.byteBuffer(WebSocketMessages.close(1009, reason: "a resize message over \(Self.maxResizeMessage) bytes"))))
                                    break reading
                                }
                                try await node.stream.write(Self.record(NodeStreamRecords.resize, data))
                            case NodeStreamRecords.close where closeSignal:
                                try await node.stream.write(Self.record(NodeStreamRecords.close, data))
                            default:
                                continue
                            }
                        }
                    }
                } catch let failure as WebSocketMessages.Failure {
                    podStreamCounters.withLock { $0.refused += 1 }
                    try? await outbound.write(.body(.byteBuffer(WebSocketMessages.close(failure.closeCode, reason: failure.description))))
                    break reading
                } catch {
                    break reading
                }
            }
            // The client is gone, or the node's side ended and closed the connection.
            node.stream.reset(.cancelled, reason: "the client left")
            channel.close(promise: nil)
            try await group.waitForAll()
        }
    }

    static func record(_ channel: UInt8, _ data: ByteBuffer) -> ByteBuffer {
        var record = ByteBuffer()
        record.reserveCapacity(data.readableBytes + 5)
        record.writeBytes(NodeStreamRecords.head(channel: channel, length: data.readableBytes))
        var data = data
        record.writeBuffer(&data)
        return record
    }
}

/// What the API server's exec, attach and port-forward sessions counted.
public struct PodStreamCounters: Sendable, Hashable {
    public var execs = 0
    public var attaches = 0
    /// Sessions ended for breaking a limit or the WebSocket protocol.
    public var refused = 0
}
