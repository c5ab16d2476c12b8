import Foundation
import KubeModel
import NIOCore
import Transport

extension EdgedStreamServer {
    /// The longest record the cloud may send on an exec stream (stdin data, a resize).
    static let maxInputRecord = 1 << 20

    /// An exec session: the command beside the container, its output as records, its exit
    /// code as the `Status` kube-apiserver passes on; ended when the cloud resets the stream.
    func serveExec(_ request: NodeStreamRequest, on stream: ByteStream) async throws {
        let (pod, container): (Kube.Pod, String)
        switch await locate(request) {
        case .failure(let refusal): return try await refuse(stream, refusal.reply)
        case .success(let found): (pod, container) = found
        }
        guard !request.command.isEmpty else {
            return try await refuse(stream, NodeStreamReply(code: 400, reason: "BadRequest", message: "you must specify at least 1 command"))
        }
        let runtime = edged.runtime
        let attempts = await runtime.containers(ofPod: PodWorker.podID(pod)).filter { $0.name == container }
        guard let newest = attempts.max(by: { $0.attempt < $1.attempt }), case .running = await runtime.state(of: newest) else {
            return try await refuse(stream, NodeStreamReply(code: 400, reason: "BadRequest",
                                                            message: "container \"\(container)\" in pod \"\(request.pod)\" is not running"))
        }
        let process: InteractiveProcess
        do {
            process = try await runtime.startSession(in: newest, command: request.command, terminal: request.tty)
        } catch {
            return try await refuse(stream, NodeStreamReply(code: 500, reason: "InternalError", message: "cannot exec in container \"\(container)\": \(error.message)"))
        }
        counters.withLock { $0.execs += 1 }
        try await stream.write(ByteBuffer(bytes: NodeStreamReply.ok.framed))
        let code: Int32
        do {
            code = try await withThrowingTaskGroup(of: Int32?.self) { group in
                group.addTask { try await Self.feedInput(process, from: stream, stdin: request.stdin); return nil }
                group.addTask {
                    try await withThrowingTaskGroup(of: Void.self) { outputs in
                        outputs.addTask { try await Self.pump(process.output, as: NodeStreamRecords.stdout, to: stream) }
                        if let errors = process.errorOutput {
                            outputs.addTask { try await Self.pump(errors, as: NodeStreamRecords.stderr, to: stream) }
                        }
                        try await outputs.waitForAll()
                    }
                    return try await process.waitForExit()
                }
                while let result = try await group.next() {
                    if let code = result {
                        group.cancelAll()
                        return code
                    }
                }
                return 255
            }
        } catch {
            // The cloud went away (or the stream broke): the session ends with it.
            process.kill()
            _ = try? await process.waitForExit()
            throw error
        }
        var record = ByteBuffer()
        let status = Self.status(exitCode: code, command: request.command).serializedBytes
        record.writeBytes(NodeStreamRecords.head(channel: NodeStreamRecords.status, length: status.count))
        record.writeBytes(status)
        try await stream.write(record)
        stream.finish()
    }

    /// An attach session: what the running container writes from now on, as stdout and stderr
    /// records, until it ends (then a `Success` status) or the cloud leaves. The process runtime
    /// gives containers no stdin, so an attach asking for it is refused.
    func serveAttach(_ request: NodeStreamRequest, on stream: ByteStream) async throws {
        let (pod, container): (Kube.Pod, String)
        switch await locate(request) {
        case .failure(let refusal): return try await refuse(stream, refusal.reply)
        case .success(let found): (pod, container) = found
        }
        let runtime = edged.runtime
        let attempts = await runtime.containers(ofPod: PodWorker.podID(pod)).filter { $0.name == container }
        guard let newest = attempts.max(by: { $0.attempt < $1.attempt }), case .running = await runtime.state(of: newest) else {
            return try await refuse(stream, NodeStreamReply(code: 400, reason: "BadRequest",
                                                            message: "container \"\(container)\" in pod \"\(request.pod)\" is not running"))
        }
        if request.stdin {
            return try await refuse(stream, NodeStreamReply(code: 400, reason: "BadRequest",
                                                            message: "container \"\(container)\" in pod \"\(request.pod)\" takes no stdin: this node's runtime starts containers with stdin closed"))
        }
        counters.withLock { $0.attaches += 1 }
        try await stream.write(ByteBuffer(bytes: NodeStreamReply.ok.framed))
        var options = NodeStreamRequest.LogOptions()
        options.follow = true
        options.tailLines = 0
        var streamer = ContainerLogStreamer(
            path: runtime.logPath(of: newest), options: options, now: 0,
            isRunning: { if case .running = await runtime.state(of: newest) { true } else { false } })
        streamer.asStreamRecords = true
        let follower = streamer
        try await untilPeerLeaves(stream) {
            try await follower.stream { try await stream.write($0) }
            var record = ByteBuffer()
            let status = Self.status(exitCode: 0, command: []).serializedBytes
            record.writeBytes(NodeStreamRecords.head(channel: NodeStreamRecords.status, length: status.count))
            record.writeBytes(status)
            try await stream.write(record)
        }
        stream.finish()
    }

    /// The `metav1.Status` kubelet reports for a command's exit.
    static func status(exitCode: Int32, command: [String]) -> JSONValue {
        guard exitCode != 0 else {
            return .object(JSONObject([("metadata", .object(JSONObject())), ("status", .string("Success"))]))
        }
        return .object(JSONObject([
            ("metadata", .object(JSONObject())), ("status", .string("Failure")),
            ("message", .string("command terminated with non-zero exit code: error executing command [\(command.joined(separator: " "))], exit code \(exitCode)")),
            ("reason", .string("NonZeroExitCode")),
            ("details", .object(JSONObject([("causes", .array([.object(JSONObject([("reason", .string("ExitCode")), ("message", .string(String(exitCode)))]))]))]))),
        ]))
    }

    /// Output of the process as records on `channel`, until it ends (a terminal whose other
    /// side closed reports an error: that is its end too).
    static func pump(_ output: NIOAsyncChannel<ByteBuffer, ByteBuffer>, as channel: UInt8, to stream: ByteStream) async throws {
        try await output.executeThenClose { inbound, _ in
            var iterator = inbound.makeAsyncIterator()
            while true {
                let chunk: ByteBuffer?
                do { chunk = try await iterator.next() } catch is CancellationError { throw CancellationError() } catch { chunk = nil }
                guard let chunk else { return }
                var record = ByteBuffer()
                record.reserveCapacity(5 + chunk.readableBytes)
                record.writeBytes(NodeStreamRecords.head(channel: channel, length: chunk.readableBytes))
                var data = chunk
                record.writeBuffer(&data)
                try await stream.write(record)
            }
        }
    }

    /// The cloud's records: stdin data into the process until stdin is closed, window sizes,
    /// until the cloud finishes its direction.
    static func feedInput(_ process: InteractiveProcess, from stream: ByteStream, stdin: Bool) async throws {
        var decoder = NodeStreamRecords.Decoder(maxLength: maxInputRecord)
        try await process.input.executeThenClose { _, writer in
            // Without stdin the command reads end-of-file at once (a terminal stays open).
            var inputOpen = stdin || process.terminal >= 0
            if !inputOpen { writer.finish() }
            while let chunk = try await stream.read() {
                decoder.append(chunk.readableBytesView)
                do {
                    while let (channel, payload) = try decoder.next() {
                        switch channel {
                        case NodeStreamRecords.stdin where inputOpen:
                            try await writer.write(ByteBuffer(bytes: payload))
                        case NodeStreamRecords.resize:
                            if let size = try? JSONValue(parsing: payload), let width = size["Width"]?.int64Value, let height = size["Height"]?.int64Value {
                                process.resize(width: UInt16(clamping: width), height: UInt16(clamping: height))
                            }
                        case NodeStreamRecords.close where payload.first == NodeStreamRecords.stdin:
                            if inputOpen, process.terminal < 0 { writer.finish() }
                            inputOpen = false
                        default:
                            break
                        }
                    }
                } catch {
                    stream.reset(.protocolError, reason: "\(error)")
                    throw error
                }
            }
        }
        // The cloud finished its direction: nothing more comes in; the output goes on.
    }
}
