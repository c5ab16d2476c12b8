import Foundation
import NIOCore
@testable import Node
import Testing
import TestSupport

/// A mosquitto broker on a free loopback port, started and stopped by the test.
final class MosquittoBroker {
    let port: Int
    private let process: Process

    /// Starts a broker on `port`, or on a free port.
    init(port requested: Int? = nil) async throws {
        port = requested ?? Self.freePort()
        process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/sbin/mosquitto")
        process.arguments = ["-p", "\(port)"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        // Ready once it accepts TCP connections.
        let port = port
        let ready = await eventually { Self.accepts(port: port) }
        guard ready else { throw TestTimeout(description: "mosquitto did not listen on \(port)") }
    }

    /// A port the kernel just handed out and released.
    private static func freePort() -> Int {
        let probe = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(probe, $0, length) } }
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(probe, $0, &length) } }
        close(probe)
        return Int(UInt16(bigEndian: address.sin_port))
    }

    private static func accepts(port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        } == 0
    }

    /// SIGKILL (a child of the test process inherits its blocked signals, so it never sees
    /// SIGTERM), then polls: `waitUntilExit` spins a core on Linux while it waits.
    func stop() {
        guard process.isRunning else { return }
        kill(process.processIdentifier, SIGKILL)
        for _ in 0..<500 where process.isRunning { usleep(10_000) }
    }
}

@Suite("MQTT client on libmosquitto against a real broker", .serialized)
struct MQTTClientTests {
    @Test("QoS 1 messages published by one client reach a wildcard subscriber in order")
    func publishAndSubscribe() async throws {
        let broker = try await MosquittoBroker()
        defer { broker.stop() }
        let subscriber = try MQTTClient(clientID: "sub-\(UUID().uuidString.prefix(8))")
        let publisher = try MQTTClient(clientID: "pub-\(UUID().uuidString.prefix(8))")
        try await subscriber.connect(host: "127.0.0.1", port: broker.port)
        try await publisher.connect(host: "127.0.0.1", port: broker.port)
        #expect(subscriber.isConnected && publisher.isConnected)
        let subscription = try subscriber.subscribe("$hw/events/device/+/twin/#", qos: 1)
        #expect(await subscriber.waitForAcknowledgement(subscription))
        var last: Int32 = 0
        for index in 0..<100 {
            last = try publisher.publish("$hw/events/device/dev-\(index % 3)/twin/update", payload: ByteBuffer(string: "{\"n\":\(index)}"), qos: 1)
        }
        // Not matched by the subscription.
        try publisher.publish("$hw/events/node/edge-1/membership/get", payload: ByteBuffer(string: "x"), qos: 1)
        #expect(await publisher.waitForAcknowledgement(last))
        let received = try await withTimeout(.seconds(10), "100 MQTT messages") {
            var received: [MQTTMessage] = []
            for await message in subscriber.messages {
                received.append(message)
                if received.count == 100 { break }
            }
            return received
        }
        #expect(received.map { String(buffer: $0.payload) } == (0..<100).map { "{\"n\":\($0)}" })
        #expect(received.map(\.topic) == (0..<100).map { "$hw/events/device/dev-\($0 % 3)/twin/update" })
        #expect(received.allSatisfy { $0.qos == 1 })
        subscriber.disconnect()
        publisher.disconnect()
    }

    @Test("a broker that is down gives a clear error, not a hang")
    func brokerDown() async throws {
        let broker = try await MosquittoBroker()
        let port = broker.port
        broker.stop()
        let client = try MQTTClient()
        await #expect(throws: MQTTError.connectTimedOut(host: "127.0.0.1", port: port)) {
            try await client.connect(host: "127.0.0.1", port: port, timeout: .milliseconds(500))
        }
        #expect(!client.isConnected)
        #expect(MQTTError.connectTimedOut(host: "127.0.0.1", port: port).description == "no answer from the MQTT broker at 127.0.0.1:\(port)")
    }

    @Test("the client reconnects by itself after the broker restarts")
    func reconnects() async throws {
        let broker = try await MosquittoBroker()
        let client = try MQTTClient(clientID: "re-\(UUID().uuidString.prefix(8))")
        try await client.connect(host: "127.0.0.1", port: broker.port)
        broker.stop()
        #expect(await eventually { !client.isConnected })
        // A new broker on the same port.
        let again = try await MosquittoBroker(port: broker.port)
        defer { again.stop() }
        #expect(await eventually(timeout: .seconds(15)) { client.isConnected })
        client.disconnect()
    }
}
