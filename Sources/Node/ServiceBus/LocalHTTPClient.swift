import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix

/// One HTTP/1.1 request over plain TCP to a server on this host, with a deadline and a cap on
/// the answer's size.
struct LocalHTTPClient: Sendable {
    let group: any EventLoopGroup

    enum Failure: Error, Equatable {
        case unreachable(String)
        case timedOut
        case tooLarge(Int)
    }

    struct Answer: Sendable {
        var status: Int
        var headers: HTTPHeaders
        var body: ByteBuffer
    }

    func perform(_ head: HTTPRequestHead, body: ByteBuffer?, host: String, port: Int, timeout: Duration, maxResponseBytes: Int) async throws -> Answer {
        try await withThrowingTaskGroup(of: Answer?.self) { group in
            group.addTask { try await exchange(head, body: body, host: host, port: port, timeout: timeout, maxResponseBytes: maxResponseBytes) }
            group.addTask {
                try await Task.sleep(for: timeout)
                return nil
            }
            defer { group.cancelAll() }
            guard let first = try await group.next(), let answer = first else { throw Failure.timedOut }
            return answer
        }
    }

    private func exchange(_ head: HTTPRequestHead, body: ByteBuffer?, host: String, port: Int, timeout: Duration, maxResponseBytes: Int) async throws -> Answer {
        let channel: NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>
        do {
            channel = try await ClientBootstrap(group: group)
                .connectTimeout(.nanoseconds(timeout.components.seconds * 1_000_000_000 + timeout.components.attoseconds / 1_000_000_000))
                .connect(host: host, port: port) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHTTPClientHandlers()
                        return try NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>(wrappingChannelSynchronously: channel)
                    }
                }
        } catch {
            throw Failure.unreachable("\(host):\(port): \(error)")
        }
        return try await channel.executeThenClose { inbound, outbound in
            try await outbound.write(.head(head))
            if let body { try await outbound.write(.body(.byteBuffer(body))) }
            try await outbound.write(.end(nil))
            var answer = Answer(status: 0, headers: [:], body: ByteBuffer())
            for try await part in inbound {
                switch part {
                case .head(let response):
                    answer.status = Int(response.status.code)
                    answer.headers = response.headers
                case .body(var chunk):
                    guard answer.body.readableBytes + chunk.readableBytes <= maxResponseBytes else {
                        throw Failure.tooLarge(maxResponseBytes)
                    }
                    answer.body.writeBuffer(&chunk)
                case .end:
                    return answer
                }
            }
            throw Failure.unreachable("\(host):\(port) closed the connection before answering")
        }
    }
}
