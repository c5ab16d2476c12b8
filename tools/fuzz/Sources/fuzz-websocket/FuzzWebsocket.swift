// Bytes from a client after TLS, through the WebSocket server's own pipeline: HTTP/1.1 until
// the upgrade on /channel, WebSocket framing (masking, fragments, control frames, limits),
// then channel frames whose first must be a HELLO. The resolver refuses every HELLO, as the
// hub does for a node it does not know.
import Logging
import NIOCore
import NIOEmbedded
@_spi(Fuzzing) import Transport

let configuration = WebSocketServer.Configuration(
    tls: TLSFiles(certificateChain: "/nonexistent", privateKey: "/nonexistent", trustRoots: "/nonexistent"),
    limits: FrameLimits(), helloTimeout: .seconds(1))
let logger = Logger(label: "fuzz", factory: { _ in SwiftLogNoOpLogHandler() })

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzWebSocket(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let input = ByteBuffer(bytes: UnsafeRawBufferPointer(start: start, count: count))
    let channel = EmbeddedChannel()
    do {
        try WebSocketServer.installPlaintextPipeline(on: channel, configuration: configuration, logger: logger) { _ in
            .refuse(GoAway(code: .unauthorized, reason: "unknown node"))
        }.wait()
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 40000)).wait()
    } catch {
        fatalError("cannot set up the pipeline: \(error)")
    }
    // Feed the bytes in a few reads, as a socket would.
    var remaining = input
    while remaining.readableBytes > 0, channel.isActive {
        let chunk = remaining.readSlice(length: min(remaining.readableBytes, 512))!
        do {
            try channel.writeInbound(chunk)
        } catch {
            break  // the pipeline refused the input
        }
        channel.embeddedEventLoop.run()
    }
    while (try? channel.readOutbound(as: ByteBuffer.self)) != nil {}
    _ = try? channel.finish(acceptAlreadyClosed: true)
    return 0
}
