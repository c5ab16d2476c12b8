import CloudHub
import EdgeHub
import Foundation
import NIOCore
import Node
import Testing
import TestSupport
import Transport

/// `python3 -m http.server` serving a temporary directory on a free port.
struct PythonHTTPServer {
    let port = freeLoopbackPort()
    let process: BackgroundProcess

    init(serving directory: String) async throws {
        process = try BackgroundProcess("/usr/bin/python3", ["-m", "http.server", "--bind", "127.0.0.1", "\(port)"], in: directory)
        let port = port
        guard await eventually({ acceptsConnections(port: port) }) else { throw TestTimeout(description: "http.server did not listen") }
    }
}

@Suite(.serialized) struct ServiceBusTests {
    private func call(_ request: ServiceRequest, through fixture: HubFixture) async throws -> ServiceResponse {
        let message = Message(router: MessageRouter(source: "cloud-caller", group: "servicebus", operation: "request", resource: request.url),
                              content: ByteBuffer(bytes: try JSONEncoder().encode(request)))
        let answer = try await fixture.hub.request(message, to: "edge-1", timeout: .seconds(20))
        return try JSONDecoder().decode(ServiceResponse.self, from: Data(answer.content.readableBytesView))
    }

    @Test func cloudCallersReachLocalHTTPServersWithinLimits() async throws {
        let fixture = try await HubFixture()
        _ = try fixture.issueCredentials(for: "edge-1")
        let site = fixture.directory + "/site"
        try FileManager.default.createDirectory(atPath: site, withIntermediateDirectories: true)
        try "hello from the edge".write(toFile: site + "/hello.txt", atomically: true, encoding: .utf8)
        try String(repeating: "x", count: 300_000).write(toFile: site + "/big.txt", atomically: true, encoding: .utf8)
        // The timeout (5 s) leaves room for python's http.server on a loaded machine.
        let server = try await PythonHTTPServer(serving: site)
        defer { server.process.stop() }
        // A server that accepts and never answers.
        let silentPort = freeLoopbackPort()
        let silent = try BackgroundProcess("/usr/bin/python3", ["-c", "import socket,time\ns=socket.socket()\ns.bind(('127.0.0.1',\(silentPort)))\ns.listen()\nc=s.accept()\ntime.sleep(60)"])
        defer { silent.stop() }
        #expect(await eventually { acceptsConnections(port: silentPort) })

        let bus = MessageBus()
        let serviceBus = ServiceBus(configuration: .init(timeout: .seconds(5), maxRequestBytes: 1024, maxResponseBytes: 100_000), bus: bus, group: testGroup)
        serviceBus.start()
        let hub = try EdgeHub(configuration: fixture.edgeConfiguration("edge-1", token: nil), bus: bus, group: testGroup)
        hub.start()
        try await hub.channel.waitUntilConnected()

        let hello = try await call(ServiceRequest(method: "GET", url: "http://127.0.0.1:\(server.port)/hello.txt", header: ["Accept": ["text/plain"]]), through: fixture)
        #expect(hello.statusCode == 200)
        #expect(String(decoding: hello.body, as: UTF8.self) == "hello from the edge")
        #expect(hello.header["Content-Length"] == ["19"])
        #expect(try await call(ServiceRequest(method: "GET", url: "http://127.0.0.1:\(server.port)/missing"), through: fixture).statusCode == 404)

        let tooLarge = try await call(ServiceRequest(method: "GET", url: "http://127.0.0.1:\(server.port)/big.txt"), through: fixture)
        #expect(tooLarge.statusCode == 502 && String(decoding: tooLarge.body, as: UTF8.self).contains("over the limit of 100000"))
        let bigBody = try await call(ServiceRequest(method: "POST", url: "http://127.0.0.1:\(server.port)/", body: Data(count: 2048)), through: fixture)
        #expect(bigBody.statusCode == 413)
        let started = ContinuousClock.now
        let timedOut = try await call(ServiceRequest(method: "GET", url: "http://127.0.0.1:\(silentPort)/"), through: fixture)
        #expect(timedOut.statusCode == 504)
        #expect(ContinuousClock.now - started >= .seconds(5) && ContinuousClock.now - started < .seconds(15))
        #expect(try await call(ServiceRequest(method: "GET", url: "http://10.1.2.3/"), through: fixture).statusCode == 403)
        #expect(try await call(ServiceRequest(method: "GET", url: "http://127.0.0.1:\(freeLoopbackPort())/"), through: fixture).statusCode == 502)
        let malformed = Message(router: MessageRouter(source: "cloud-caller", group: "servicebus", operation: "request", resource: "x"),
                                content: ByteBuffer(string: "{\"method\":"))
        let answer = try await fixture.hub.request(malformed, to: "edge-1", timeout: .seconds(20))
        #expect(try JSONDecoder().decode(ServiceResponse.self, from: Data(answer.content.readableBytesView)).statusCode == 400)
        #expect(serviceBus.statistics.calls == 2 && serviceBus.statistics.refused == 6)

        await hub.stop()
        await serviceBus.stop()
        await fixture.stop()
    }
}
