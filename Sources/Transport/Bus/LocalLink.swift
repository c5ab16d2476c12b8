import NIOCore
import Synchronization

/// The in-process backend of ``MessageChannel``: two channels joined in memory. Every byte
/// still goes through the frame codec, so channel semantics (lanes, credit, acks, resume) are
/// exercised exactly as over a socket, without one.
public final class LocalLink: ChannelLink, Sendable {
    public let eventLoop: any EventLoop
    public var headroom: Int { 0 }
    public var allocator: ByteBufferAllocator { ByteBufferAllocator() }
    public var isWritable: Bool { true }

    private let channel: MessageChannel
    private let peerLink: Mutex<LocalLink?> = Mutex(nil)
    private let closed = Atomic<Bool>(false)
    private let awaitingHello: Bool

    private init(channel: MessageChannel, eventLoop: any EventLoop, awaitingHello: Bool) {
        self.channel = channel
        self.eventLoop = eventLoop
        self.awaitingHello = awaitingHello
    }

    /// Connects `client` to `server`: the client sends HELLO, the server answers, both replay.
    /// Returns the client's link; closing it (or the server's) ends the connection for both.
    @discardableResult
    public static func connect(
        client: MessageChannel, server: MessageChannel, clientLoop: any EventLoop, serverLoop: any EventLoop
    ) -> LocalLink {
        let clientLink = LocalLink(channel: client, eventLoop: clientLoop, awaitingHello: false)
        let serverLink = LocalLink(channel: server, eventLoop: serverLoop, awaitingHello: true)
        clientLink.peerLink.withLock { $0 = serverLink }
        serverLink.peerLink.withLock { $0 = clientLink }
        clientLoop.execute { client.attachAsClient(clientLink) }
        return clientLink
    }

    public func writeBatch(_ parts: inout [ByteBuffer]) {
        defer { parts = [] }
        guard !closed.load(ordering: .acquiring), let peer = peerLink.withLock({ $0 }) else { return }
        var joined: ByteBuffer
        if parts.count == 1 {
            joined = parts[0]
        } else {
            joined = ByteBuffer()
            for var part in parts { joined.writeBuffer(&part) }
        }
        let batch = joined
        peer.eventLoop.execute { peer.deliver(batch) }
    }

    private let helloSeen = Atomic<Bool>(false)

    private func deliver(_ bytes: ByteBuffer) {
        guard !closed.load(ordering: .acquiring) else { return }
        var bytes = bytes
        if awaitingHello, !helloSeen.load(ordering: .acquiring) {
            switch HelloReader.read(bytes, limits: channel.configuration.limits) {
            case .hello(let hello, let remainder):
                helloSeen.store(true, ordering: .releasing)
                channel.attachAsServer(self, hello: hello)
                bytes = remainder
            case .needMoreBytes:
                return close(sending: GoAway(code: .protocolError, reason: "incomplete HELLO"))
            case .refused(let goAway):
                return close(sending: goAway)
            }
        }
        if bytes.readableBytes > 0 { channel.receive(&bytes, from: self, wholeFrames: true) }
    }

    public func close(sending goAway: GoAway?) {
        guard !closed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        let peer = peerLink.withLock { $0 }
        if let goAway, let peer {
            var buffer = ByteBuffer()
            FrameCodec.encode(.goAway(goAway), into: &buffer)
            let frame = buffer
            peer.eventLoop.execute { peer.deliver(frame) }
        }
        channel.detach(self)
        if let peer { peer.eventLoop.execute { peer.close(sending: nil) } }
    }
}
