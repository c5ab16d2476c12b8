import NIOCore
import NIOHTTP1
import NIOPosix

/// A plain HTTP/1.1 client for tests of the node's local HTTP endpoints: one request per
/// connection, the response head and then its body as it arrives.
public struct TestHTTPResponse: Sendable {
    public var status: Int
    public var headers: HTTPHeaders
    /// Body chunks as they arrive; ends with the response.
    public var body: AsyncThrowingStream<ByteBuffer, any Error>

    /// The whole body as a string.
    public func text() async throws -> String {
        var all = ByteBuffer()
        for try await var chunk in body { all.writeBuffer(&chunk) }
        return String(buffer: all)
    }

    /// The whole body's bytes.
    public func bytes() async throws -> [UInt8] {
        var all: [UInt8] = []
        for try await chunk in body { all += chunk.readableBytesView }
        return all
    }

    /// The body split into newline-terminated lines, as they arrive (watch streams).
    public func lines() -> AsyncThrowingStream<String, any Error> {
        let body = body
        return AsyncThrowingStream { continuation in
            let task = Task {
                var pending = ""
                do {
                    for try await chunk in body {
                        pending += String(buffer: chunk)
                        while let newline = pending.firstIndex(of: "\n") {
                            continuation.yield(String(pending[..<newline]))
                            pending = String(pending[pending.index(after: newline)...])
                        }
                    }
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }
}

/// Sends `method path` to `host`:`port` (127.0.0.1 unless given) and returns the response once
/// its head arrives; a peer that accepts and never answers (a port another test took) is given
/// up after `timeout`.
public func httpRequest(_ method: HTTPMethod = .GET, host: String = "127.0.0.1", port: Int, path: String, body: String? = nil,
                        bytes: [UInt8]? = nil, headers: [(String, String)] = [], timeout: Duration = .seconds(30)) async throws -> TestHTTPResponse {
    let payload = bytes.map { ByteBuffer(bytes: $0) } ?? body.map { ByteBuffer(string: $0) }
    let channel = try await ClientBootstrap(group: testGroup)
        .connectTimeout(.seconds(5))
        .connect(host: host, port: port) { channel in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHTTPClientHandlers()
                return try NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>(wrappingChannelSynchronously: channel)
            }
        }
    let (headStream, headSink) = AsyncThrowingStream<(Int, HTTPHeaders), any Error>.makeStream()
    let (bodyStream, bodySink) = AsyncThrowingStream<ByteBuffer, any Error>.makeStream()
    Task {
        do {
            try await channel.executeThenClose { inbound, outbound in
                var head = HTTPRequestHead(version: .http1_1, method: method, uri: path)
                head.headers.add(name: "Host", value: "\(host):\(port)")
                head.headers.add(name: "Connection", value: "close")
                for (name, value) in headers { head.headers.add(name: name, value: value) }
                if let payload { head.headers.add(name: "Content-Length", value: "\(payload.readableBytes)") }
                try await outbound.write(.head(head))
                if let payload { try await outbound.write(.body(.byteBuffer(payload))) }
                try await outbound.write(.end(nil))
                for try await part in inbound {
                    switch part {
                    case .head(let response):
                        headSink.yield((Int(response.status.code), response.headers))
                        headSink.finish()
                    case .body(let chunk): bodySink.yield(chunk)
                    case .end:
                        bodySink.finish()
                        return
                    }
                }
                bodySink.finish()
            }
        } catch {
            headSink.finish(throwing: error)
            bodySink.finish(throwing: error)
        }
    }
    let nioChannel = channel.channel
    let timer = Task {
        try await Task.sleep(for: timeout)
        nioChannel.close(promise: nil)
    }
    defer { timer.cancel() }
    var iterator = headStream.makeAsyncIterator()
    let answer: (Int, HTTPHeaders)?
    do {
        answer = try await iterator.next()
    } catch where timer.isCancelled == false && !nioChannel.isActive {
        // The timer closed it: say so, rather than NIO's "I/O on closed channel".
        throw TestTimeout(description: "no response from port \(port) within \(timeout) (\(method) \(path)): \(error)")
    }
    guard let (status, headers) = answer else { throw TestTimeout(description: "no response from port \(port)") }
    return TestHTTPResponse(status: status, headers: headers, body: bodyStream)
}
