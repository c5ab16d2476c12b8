import CloudHub
import KubeModel
import NIOCore
import Synchronization
import Transport

/// Opens streams to a node's Edged for logs, exec, attach, port forwards and statistics: what
/// the API server (and the kubelet-compatible endpoint) hand a client's request to.
public protocol NodeStreamOpener: Sendable {
    /// Opens a stream to `node` carrying `request` and reads Edged's reply. A reply other than
    /// 200 comes back as ``NodeStreamError/refused(_:)``; a node that is not connected as
    /// ``NodeStreamError/offline(_:)`` at once.
    func open(_ request: NodeStreamRequest, on node: String) async throws(NodeStreamError) -> NodeStream
}

/// A stream Edged accepted: read the payload from ``read()`` (starting with what came in
/// behind the reply), write to ``stream``.
public final class NodeStream: Sendable {
    public let stream: ByteStream
    private let leftover: LeftoverBytes

    init(stream: ByteStream, leftover: ByteBuffer?) {
        self.stream = stream
        self.leftover = LeftoverBytes(leftover)
    }

    /// The next payload bytes from Edged; `nil` once it finished.
    public func read() async throws -> ByteBuffer? {
        if let first = leftover.take() { return first }
        return try await stream.read()
    }
}

/// Bytes that arrived behind a reply, taken once.
final class LeftoverBytes: Sendable {
    private let bytes: Mutex<ByteBuffer?>

    init(_ bytes: ByteBuffer?) { self.bytes = Mutex(bytes.flatMap { $0.readableBytes > 0 ? $0 : nil }) }

    func take() -> ByteBuffer? { bytes.withLock { value in defer { value = nil }; return value } }
}

/// Why a stream to a node could not be had.
public enum NodeStreamError: Error, Sendable, CustomStringConvertible {
    /// The node's edgecore is not connected.
    case offline(String)
    /// Edged answered with an error (its code, kube reason and message).
    case refused(NodeStreamReply)
    /// The stream failed before Edged answered.
    case failed(String)

    public var description: String {
        switch self {
        case .offline(let node): "node \"\(node)\" is offline: its edgecore is not connected to cloudcore"
        case .refused(let reply): "\(reply.code) \(reply.reason): \(reply.message)"
        case .failed(let reason): reason
        }
    }
}

/// ``NodeStreamOpener`` over CloudHub's node sessions.
public struct HubNodeStreams: NodeStreamOpener {
    let hub: CloudHub

    public init(hub: CloudHub) { self.hub = hub }

    public func open(_ request: NodeStreamRequest, on node: String) async throws(NodeStreamError) -> NodeStream {
        guard let channel = hub.channel(of: node), channel.isConnected else { throw .offline(node) }
        let stream: ByteStream
        do {
            stream = try channel.openStream(header: ByteBuffer(bytes: request.json.serializedBytes))
        } catch TransportError.notConnected {
            throw .offline(node)
        } catch {
            throw .failed("cannot open a stream to node \"\(node)\": \(error)")
        }
        // The reply: a 4-byte length and that much JSON, possibly with payload behind it.
        var received = ByteBuffer()
        do {
            while true {
                if let length = received.getInteger(at: received.readerIndex, as: UInt32.self) {
                    guard length <= NodeStreamReply.maxLength else {
                        stream.reset(.protocolError, reason: "reply of \(length) bytes")
                        throw NodeStreamError.failed("node \"\(node)\" sent a reply of \(length) bytes")
                    }
                    if received.readableBytes >= 4 + Int(length) {
                        received.moveReaderIndex(forwardBy: 4)
                        let json = received.readSlice(length: Int(length))!
                        guard let reply = NodeStreamReply(json: json.readableBytesView) else {
                            stream.reset(.protocolError, reason: "the reply is not JSON")
                            throw NodeStreamError.failed("node \"\(node)\" sent a malformed reply")
                        }
                        guard reply.code == 200 else { throw NodeStreamError.refused(reply) }
                        return NodeStream(stream: stream, leftover: received)
                    }
                }
                guard var chunk = try await stream.read() else {
                    throw NodeStreamError.failed("node \"\(node)\" closed the stream without a reply")
                }
                received.writeBuffer(&chunk)
            }
        } catch let error as NodeStreamError {
            throw error
        } catch TransportError.streamAborted(let reason) {
            throw .failed("the stream to node \"\(node)\" ended: \(reason)")
        } catch {
            throw .failed("the stream to node \"\(node)\" failed: \(error)")
        }
    }
}
