import Foundation
import NIOCore
import NIOHPACK
import NIOHTTP2
import NIOPosix
import Synchronization

/// Why a gRPC call failed: a gRPC status from the server, or no answer at all.
public struct GRPCCallError: Error, Sendable, CustomStringConvertible {
    /// gRPC status codes used here.
    public static let deadlineExceeded = 4
    public static let notFound = 5
    public static let resourceExhausted = 8
    public static let internalError = 13
    public static let unavailable = 14

    /// The gRPC status code (`unavailable` when the server could not be reached).
    public var code: Int
    public var message: String

    public var description: String { "gRPC status \(code): \(message)" }
}

/// A unary gRPC client over HTTP/2 on a unix socket (containerd's CRI endpoint): one
/// connection, made when first needed and again after it drops, with every call on a stream of
/// its own. Messages are protocol buffers encoded by the caller.
final class GRPCUnixClient: Sendable {
    let socketPath: String
    /// The largest reply taken; a bigger one fails the call with `resourceExhausted`.
    let maxMessageBytes: Int
    private let group: any EventLoopGroup

    private typealias Multiplexer = NIOHTTP2Handler.AsyncStreamMultiplexer<Void>
    private struct Connection: Sendable {
        var channel: any Channel
        var multiplexer: Multiplexer
    }
    /// The connection: being made by one caller (the others wait for it), or made.
    private enum Current {
        case connecting(waiters: [CheckedContinuation<Connection, any Error>])
        case connected(Connection, id: ObjectIdentifier)
    }
    private let connection = Mutex<Current?>(nil)

    init(socketPath: String, maxMessageBytes: Int = 16 << 20, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) {
        self.socketPath = socketPath
        self.maxMessageBytes = maxMessageBytes
        self.group = group
    }

    /// HTTP/2 settings for a trusted local peer. gRPC servers in Go (containerd) answer every
    /// request with a PING that measures the link; NIO counts inbound PINGs as a flood after
    /// 200 in 30 s and then stalls the connection, so the limit is far higher here. Windows of
    /// 1 MiB let a large listing come in without waiting on window updates.
    private static var http2Configuration: NIOHTTP2Handler.Configuration {
        var configuration = NIOHTTP2Handler.Configuration()
        configuration.connection.controlFrameRateLimit.maximumCount = 1_000_000
        configuration.connection.targetWindowSize = 1 << 20
        configuration.stream.targetWindowSize = 1 << 20
        return configuration
    }

    /// The open connection; the first caller that finds none makes it in its own task while
    /// later callers wait for that attempt.
    private func connected() async throws(GRPCCallError) -> Connection {
        enum Next { case use(Connection), wait, make }
        let next = connection.withLock { current -> Next in
            switch current {
            case .connected(let existing, _)?: return .use(existing)
            case .connecting?: return .wait
            case nil:
                current = .connecting(waiters: [])
                return .make
            }
        }
        switch next {
        case .use(let open):
            return open
        case .wait:
            do {
                return try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Connection, any Error>) in
                    let ready = connection.withLock { current -> Connection? in
                        switch current {
                        case .connecting(var waiters)?:
                            waiters.append(continuation)
                            current = .connecting(waiters: waiters)
                            return nil
                        case .connected(let existing, _)?: return existing
                        case nil: return nil
                        }
                    }
                    if let ready { continuation.resume(returning: ready) } else if connection.withLock({ $0 == nil }) {
                        continuation.resume(throwing: GRPCCallError(code: GRPCCallError.unavailable, message: "cannot connect to \(socketPath)"))
                    }
                }
            } catch let error as GRPCCallError {
                throw error
            } catch {
                throw GRPCCallError(code: GRPCCallError.unavailable, message: "cannot connect to \(socketPath): \(error)")
            }
        case .make:
            let result: Result<Connection, any Error>
            do {
                result = .success(try await ClientBootstrap(group: group)
                    .connectTimeout(.seconds(5))
                    .connect(unixDomainSocketPath: socketPath) { channel in
                        channel.eventLoop.makeCompletedFuture {
                            let multiplexer = try channel.pipeline.syncOperations.configureAsyncHTTP2Pipeline(
                                mode: .client, configuration: Self.http2Configuration
                            ) { stream in
                                stream.eventLoop.makeSucceededVoidFuture()  // the server opens no streams
                            }
                            return Connection(channel: channel, multiplexer: multiplexer)
                        }
                    })
            } catch {
                result = .failure(error)
            }
            let waiters = connection.withLock { current -> [CheckedContinuation<Connection, any Error>] in
                guard case .connecting(let waiters)? = current else { return [] }
                switch result {
                case .success(let open): current = .connected(open, id: ObjectIdentifier(open.channel))
                case .failure: current = nil
                }
                return waiters
            }
            for waiter in waiters { waiter.resume(with: result) }
            switch result {
            case .success(let open):
                // Forgotten when it closes, so that the next call reconnects.
                let id = ObjectIdentifier(open.channel)
                open.channel.closeFuture.whenComplete { [weak self] _ in self?.forget(id) }
                return open
            case .failure(let error):
                throw GRPCCallError(code: GRPCCallError.unavailable, message: "cannot connect to \(socketPath): \(error)")
            }
        }
    }

    /// Drops the connection `id` (when it is still the current one).
    private func forget(_ id: ObjectIdentifier) {
        connection.withLock { current in
            if case .connected(_, let current_id)? = current, current_id == id { current = nil }
        }
    }

    /// Calls `method` (`/package.Service/Method`) with `request`; the reply's bytes. The call
    /// fails with `deadlineExceeded` when no full reply came within `timeout`.
    func call(_ method: String, _ request: [UInt8], timeout: Duration) async throws(GRPCCallError) -> [UInt8] {
        let open = try await connected()
        let stream: NIOAsyncChannel<HTTP2Frame.FramePayload, HTTP2Frame.FramePayload>
        do {
            stream = try await open.multiplexer.openStream { channel in
                channel.eventLoop.makeCompletedFuture {
                    try NIOAsyncChannel<HTTP2Frame.FramePayload, HTTP2Frame.FramePayload>(wrappingChannelSynchronously: channel)
                }
            }
        } catch {
            try? await open.channel.close()
            throw GRPCCallError(code: GRPCCallError.unavailable, message: "cannot open a stream to \(socketPath): \(error)")
        }
        let expired = ExpiryFlag()
        let timer = stream.channel.eventLoop.scheduleTask(in: .nanoseconds(Int64(timeout.components.seconds) * 1_000_000_000 + timeout.components.attoseconds / 1_000_000_000)) {
            expired.value.store(true, ordering: .relaxed)
            stream.channel.close(promise: nil)
        }
        defer { timer.cancel() }
        do {
            return try await exchange(method, request, on: stream)
        } catch {
            if expired.value.load(ordering: .relaxed) {
                // Deadlines include the time a call waits for on purpose: missing one means
                // the connection is stuck, and the next call starts a new one.
                try? await open.channel.close()
                throw GRPCCallError(code: GRPCCallError.deadlineExceeded, message: "\(method): no reply within \(timeout)")
            }
            if let error = error as? GRPCCallError { throw error }
            throw GRPCCallError(code: GRPCCallError.unavailable, message: "\(method): \(error)")
        }
    }

    private func exchange(_ method: String, _ request: [UInt8], on stream: NIOAsyncChannel<HTTP2Frame.FramePayload, HTTP2Frame.FramePayload>) async throws -> [UInt8] {
        try await stream.executeThenClose { inbound, outbound in
            let headers: HPACKHeaders = [
                ":method": "POST", ":scheme": "http", ":path": method, ":authority": "localhost",
                "content-type": "application/grpc", "te": "trailers", "user-agent": "edged-cri/1",
            ]
            try await outbound.write(.headers(.init(headers: headers)))
            var body = ByteBuffer()
            body.writeInteger(UInt8(0))  // not compressed
            body.writeInteger(UInt32(request.count))
            body.writeBytes(request)
            try await outbound.write(.data(.init(data: .byteBuffer(body), endStream: true)))

            var reply = ByteBuffer()
            var status: Int?
            var message = ""
            var ended = false
            frames: for try await frame in inbound {
                switch frame {
                case .headers(let received):
                    if let code = received.headers.first(name: ":status"), code != "200" {
                        throw GRPCCallError(code: GRPCCallError.internalError, message: "\(method): HTTP status \(code)")
                    }
                    if let code = received.headers.first(name: "grpc-status") {
                        status = Int(code) ?? GRPCCallError.internalError
                        message = received.headers.first(name: "grpc-message").map { $0.removingPercentEncoding ?? $0 } ?? ""
                    }
                    if received.endStream {
                        ended = true
                        break frames
                    }
                case .data(let data):
                    guard case .byteBuffer(var bytes) = data.data else { continue }
                    guard reply.readableBytes + bytes.readableBytes <= maxMessageBytes + 5 else {
                        throw GRPCCallError(code: GRPCCallError.resourceExhausted, message: "\(method): the reply is over \(maxMessageBytes) bytes")
                    }
                    reply.writeBuffer(&bytes)
                    if data.endStream {
                        ended = true
                        break frames
                    }
                case .rstStream(let code):
                    throw GRPCCallError(code: GRPCCallError.unavailable, message: "\(method): the stream was reset (\(code))")
                default:
                    continue
                }
            }
            guard ended else { throw GRPCCallError(code: GRPCCallError.unavailable, message: "\(method): the connection ended before the reply") }
            guard let status else { throw GRPCCallError(code: GRPCCallError.internalError, message: "\(method): the reply has no grpc-status") }
            guard status == 0 else { throw GRPCCallError(code: status, message: message) }
            guard let compressed = reply.readInteger(as: UInt8.self), let length = reply.readInteger(as: UInt32.self) else {
                return []  // an empty message
            }
            guard compressed == 0 else { throw GRPCCallError(code: GRPCCallError.internalError, message: "\(method): the reply is compressed") }
            guard let bytes = reply.readBytes(length: Int(length)) else {
                throw GRPCCallError(code: GRPCCallError.internalError, message: "\(method): the reply is cut short")
            }
            return bytes
        }
    }
}

/// Set when a call's deadline passed (a class, so that the timer's closure can hold it).
private final class ExpiryFlag: Sendable {
    let value = Atomic<Bool>(false)
}
