// UDP datagrams into the QUIC server, through the handler its socket feeds (classification,
// stateless replies, Retry and address tokens, ngtcp2's accept and packet processing, the
// connection's link waiting for a HELLO). Input: datagrams, each a 2-byte big-endian length
// and its bytes. The first byte's low bit chooses the server: with Retry (as deployed) or without
// (so that Initials reach a connection).
import Foundation
import Logging
import NIOCore
import NIOEmbedded
@_spi(Fuzzing) import Transport

/// Two servers (with and without Retry) on certificates made once, in a temporary directory.
let servers: [QUICServer] = {
    let directory = NSTemporaryDirectory() + "fuzz-quic-certificates"
    let tls = TLSFiles(certificateChain: directory + "/server.crt", privateKey: directory + "/server.key", trustRoots: directory + "/ca.crt")
    do {
        try? FileManager.default.removeItem(atPath: directory)  // a fresh CA each run
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let authority = try CertificateAuthority.loadOrCreate(certificatePath: tls.trustRoots, keyPath: directory + "/ca.key")
        let key = try PrivateKey.generate()
        try Data(try key.export()).write(to: URL(fileURLWithPath: tls.privateKey))
        try Data(try authority.issueServerCertificate(key: key, names: ["127.0.0.1"]).export()).write(to: URL(fileURLWithPath: tls.certificateChain))
    } catch {
        fatalError("cannot make the server's certificates: \(error)")
    }
    let logger = Logger(label: "fuzz", factory: { _ in SwiftLogNoOpLogHandler() })
    return [true, false].map { retry in
        var configuration = QUICServer.Configuration(port: 0, tls: tls, retry: retry, helloTimeout: .seconds(1))
        configuration.segmentationOffload = false
        configuration.explicitCongestionNotification = false
        return QUICServer(configuration: configuration, logger: logger) { _ in .refuse(GoAway(code: .unauthorized, reason: "unknown node")) }
    }
}()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzQUIC(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    var input = ByteBuffer(bytes: UnsafeRawBufferPointer(start: start, count: count))
    guard let mode = input.readInteger(as: UInt8.self) else { return 0 }
    let channel = EmbeddedChannel()
    do {
        try channel.pipeline.syncOperations.addHandler(servers[Int(mode & 1)].datagramHandlerForFuzzing())
    } catch {
        fatalError("cannot set up the QUIC handler: \(error)")
    }
    let peer = try! SocketAddress(ipAddress: "127.0.0.1", port: 40000 + Int(mode >> 1))
    while let length = input.readInteger(as: UInt16.self), let datagram = input.readSlice(length: min(Int(length), input.readableBytes)) {
        do {
            try channel.writeInbound(AddressedEnvelope(remoteAddress: peer, data: datagram))
        } catch {
            break
        }
        channel.pipeline.fireChannelReadComplete()
        channel.embeddedEventLoop.run()
    }
    while (try? channel.readOutbound(as: AddressedEnvelope<ByteBuffer>.self)) != nil {}
    _ = try? channel.finish(acceptAlreadyClosed: true)
    return 0
}
