import Foundation
import KubeModel
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization
import Transport

/// Serves what the cloud asks of this node's pods on the channel's byte streams, as kubelet's
/// streaming endpoints do: container logs, exec and attach sessions, port forwards and
/// statistics. Each stream's open header is a ``NodeStreamRequest``; the first bytes written
/// back are a ``NodeStreamReply`` (200, or the error kube-apiserver passes on), then the payload.
///
/// Every stream is served by a child task of ``run()``; a stream the cloud resets (the client
/// went away) ends its task.
public final class EdgedStreamServer: Service, Sendable {
    /// What the server counted, for `/metrics`.
    public struct Counters: Sendable, Hashable {
        public var logs = 0
        public var execs = 0
        public var attaches = 0
        public var refused = 0
        public var failed = 0
    }

    let edged: Edged
    let channel: MessageChannel
    let logger: Logger
    let counters = Mutex(Counters())

    public init(edged: Edged, channel: MessageChannel, logger: Logger = Logger(label: "edged.streams")) {
        self.edged = edged
        self.channel = channel
        self.logger = logger
    }

    public var statistics: Counters { counters.withLock { $0 } }

    /// Serves streams until graceful shutdown, cancellation or the channel's close; returns once
    /// every stream's task has ended.
    public func run() async {
        await withDiscardingTaskGroup { group in
            for await stream in channel.incomingStreams.cancelOnGracefulShutdown() {
                group.addTask { [self] in await serve(stream) }
            }
            group.cancelAll()
        }
    }

    private func serve(_ stream: ByteStream) async {
        guard let request = NodeStreamRequest(json: stream.header.readableBytesView) else {
            counters.withLock { $0.refused += 1 }
            return stream.reset(.refused, reason: "the stream's header is not a request Edged serves")
        }
        do {
            switch request.kind {
            case .log: try await serveLog(request, on: stream)
            case .exec: try await serveExec(request, on: stream)
            case .attach: try await serveAttach(request, on: stream)
            default:
                try await refuse(stream, NodeStreamReply(code: 501, reason: "NotImplemented", message: "\(request.kind.rawValue) is not served by this node yet"))
            }
        } catch is CancellationError {
            stream.reset(.cancelled, reason: "edgecore is stopping")
        } catch {
            counters.withLock { $0.failed += 1 }
            logger.debug("stream ended", metadata: ["kind": "\(request.kind.rawValue)", "pod": "\(request.namespace)/\(request.pod)", "error": "\(error)"])
            stream.reset(.internalError, reason: "\(error)")
        }
    }

    /// Answers with an error reply and ends the stream.
    func refuse(_ stream: ByteStream, _ reply: NodeStreamReply) async throws {
        counters.withLock { $0.refused += 1 }
        try await stream.write(ByteBuffer(bytes: reply.framed))
        stream.finish()
    }

    /// The pod the request names, and the container, as this node holds them; or the reply
    /// that refuses the request.
    func locate(_ request: NodeStreamRequest) async -> Result<(pod: Kube.Pod, container: String), ReplyError> {
        guard let stored = try? await edged.store.get(ResourceKey(namespace: request.namespace, type: "pod", name: request.pod)),
              let json = try? JSONValue(parsing: stored.json) else {
            return .failure(ReplyError(NodeStreamReply(code: 404, reason: "NotFound", message: "pod \"\(request.pod)\" not found on node \(edged.configuration.nodeName)")))
        }
        let pod = Kube.Pod(json: json)
        if !request.uid.isEmpty, let uid = pod.uid, uid != request.uid {
            return .failure(ReplyError(NodeStreamReply(code: 404, reason: "NotFound", message: "pod \"\(request.pod)\" with uid \(request.uid) not found on node \(edged.configuration.nodeName)")))
        }
        let names = pod.containers.map(\.name) + pod.initContainers.map(\.name)
        guard names.contains(request.container) else {
            return .failure(ReplyError(NodeStreamReply(code: 400, reason: "BadRequest", message: "container \(request.container) is not valid for pod \(request.pod)")))
        }
        return .success((pod, request.container))
    }

    struct ReplyError: Error {
        let reply: NodeStreamReply
        init(_ reply: NodeStreamReply) { self.reply = reply }
    }

    // MARK: logs

    private func serveLog(_ request: NodeStreamRequest, on stream: ByteStream) async throws {
        let (pod, container): (Kube.Pod, String)
        switch await locate(request) {
        case .failure(let refusal): return try await refuse(stream, refusal.reply)
        case .success(let found): (pod, container) = found
        }
        let runtime = edged.runtime
        let attempts = await runtime.containers(ofPod: PodWorker.podID(pod)).filter { $0.name == container }.sorted { $0.attempt < $1.attempt }
        guard let newest = attempts.last else {
            return try await refuse(stream, NodeStreamReply(code: 400, reason: "BadRequest",
                                                            message: "container \"\(container)\" in pod \"\(request.pod)\" is waiting to start: ContainerCreating"))
        }
        var target = newest
        if request.log.previous {
            guard let previous = attempts.last(where: { $0.attempt < newest.attempt }) else {
                return try await refuse(stream, NodeStreamReply(code: 400, reason: "BadRequest",
                                                                message: "previous terminated container \"\(container)\" in pod \"\(request.pod)\" not found"))
            }
            target = previous
        }
        counters.withLock { $0.logs += 1 }
        try await stream.write(ByteBuffer(bytes: NodeStreamReply.ok.framed))
        var options = request.log
        if request.log.previous { options.follow = false }
        let following = target
        let streamer = ContainerLogStreamer(
            path: runtime.logPath(of: target), options: options, now: Int64(Date().timeIntervalSince1970 * 1_000_000_000),
            isRunning: { if case .running = await runtime.state(of: following) { true } else { false } })
        try await untilPeerLeaves(stream) {
            try await streamer.stream { try await stream.write($0) }
        }
        stream.finish()
    }

    /// Runs `body`, cancelling it when the cloud resets the stream or finishes its direction
    /// (the client went away).
    func untilPeerLeaves(_ stream: ByteStream, _ body: @escaping @Sendable () async throws -> Void) async throws {
        try await withThrowingTaskGroup(of: Bool.self) { group in
            group.addTask {
                try await body()
                return true
            }
            group.addTask {
                // What the cloud sends here is ignored (a log stream carries nothing from it;
                // an attach without stdin only window sizes): its end means it left.
                while (try? await stream.read()) != nil {}
                return false
            }
            _ = try await group.next()
            group.cancelAll()
        }
    }
}
