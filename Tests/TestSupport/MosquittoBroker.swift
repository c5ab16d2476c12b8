import Foundation

/// A mosquitto broker on a free loopback port, started and stopped by the test.
public final class MosquittoBroker: Sendable {
    public let port: Int
    private let process: BackgroundProcess

    /// Starts a broker on `port`, or on a free port.
    public init(port requested: Int? = nil) async throws {
        let port = requested ?? freeLoopbackPort()
        self.port = port
        process = try BackgroundProcess("/usr/sbin/mosquitto", ["-p", "\(port)"])
        // Ready once it accepts TCP connections.
        guard await eventually({ acceptsConnections(port: port) }) else { throw TestTimeout(description: "mosquitto did not listen on \(port)") }
    }

    /// Ends the broker.
    public func stop() { process.stop() }
}
