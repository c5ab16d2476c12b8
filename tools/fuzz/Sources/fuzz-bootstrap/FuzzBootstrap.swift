// The hub's certificate endpoint as a joining or rotating node reaches it: DER certificate
// signing requests with a valid bootstrap token, with a token from the input, or with a
// "current certificate" from the input instead of a token. The first byte chooses which; a
// line of token or certificate follows, then the request body.
import Foundation
import FuzzSupport
@_spi(Fuzzing) import CloudHub

let endpoint: CertificateEndpointFuzzing = {
    let directory = NSTemporaryDirectory() + "fuzz-bootstrap-ca"
    do {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        return try CertificateEndpointFuzzing(directory: directory)
    } catch {
        fatalError("cannot create the CA: \(error)")
    }
}()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzBootstrap(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    guard let input = FuzzInput(start, count) else { return 0 }
    let (mode, line, body) = (input.mode, input.line, input.rest)
    var headers = [("NodeName", "edge-1")]
    var peerCertificate: [UInt8]?
    switch mode % 4 {
    case 0: headers.append(("Authorization", "Bearer " + endpoint.validToken))
    case 1: headers.append(("Authorization", String(decoding: line, as: UTF8.self)))
    case 2: peerCertificate = line
    default: headers = []
    }
    let method = mode & 0x10 == 0 ? "POST" : "GET"
    let path = mode & 0x20 == 0 ? "/edge.crt" : "/ca.crt"
    let status = endpoint.answer(method: method, path: path, headers: headers, body: body, peerCertificate: peerCertificate)
    guard [200, 400, 401, 403, 404, 405].contains(status) else { fatalError("unexpected status \(status)") }
    return 0
}
