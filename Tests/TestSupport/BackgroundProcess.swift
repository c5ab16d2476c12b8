import Foundation

/// A process a test starts and later kills: a broker, a local HTTP server.
public final class BackgroundProcess: @unchecked Sendable {
    private let process = Process()

    /// Starts `executable` with `arguments`; output goes to `outputFile` (created) or nowhere.
    public init(_ executable: String, _ arguments: [String], in directory: String? = nil, outputFile: String? = nil) throws {
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
        if let outputFile {
            _ = FileManager.default.createFile(atPath: outputFile, contents: nil)
            let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: outputFile))
            process.standardOutput = handle
            process.standardError = handle
        } else {
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
        }
        try process.run()
    }

    public var isRunning: Bool { process.isRunning }

    public var processIdentifier: Int32 { process.processIdentifier }

    /// Sends `signal` and waits (polling) up to `timeout` for the exit; the exit status, or
    /// `nil` if it is still running.
    public func signal(_ signal: Int32, waitingUpTo timeout: Duration) async -> Int32? {
        kill(process.processIdentifier, signal)
        let deadline = ContinuousClock.now + timeout
        while process.isRunning, ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(20)) }
        return process.isRunning ? nil : process.terminationStatus
    }

    /// SIGKILL (a child of the test process inherits its blocked signals, so it never sees
    /// SIGTERM), then polls: `waitUntilExit` spins a core on Linux while it waits.
    public func stop() {
        guard process.isRunning else { return }
        kill(process.processIdentifier, SIGKILL)
        for _ in 0..<500 where process.isRunning { usleep(10_000) }
    }
}

/// A port free for both TCP and UDP, picked at random below the kernel's ephemeral range.
/// The kernel's own choice (bind to port 0) lies in the ephemeral range, where any client socket
/// (a QUIC endpoint's UDP socket, an outgoing connection) may take it before the daemon binds
/// it; and a TCP probe alone says nothing of UDP, where QUIC listens.
public func freeLoopbackPort() -> Int {
    let low = (try? String(contentsOfFile: "/proc/sys/net/ipv4/ip_local_port_range", encoding: .utf8))
        .flatMap { $0.split(whereSeparator: \.isWhitespace).first.flatMap { Int($0) } } ?? 32768
    let range = 10_000..<max(10_001, min(low, 65_536))
    for _ in 0..<1_000 {
        let port = Int.random(in: range)
        if canBind(port: port, type: SOCK_STREAM), canBind(port: port, type: SOCK_DGRAM) { return port }
    }
    fatalError("no free port in \(range)")
}

/// Whether `port` can be bound on every IPv4 address (so on loopback too) for `type`.
private func canBind(port: Int, type: __socket_type) -> Bool {
    let probe = socket(AF_INET, Int32(type.rawValue), 0)
    guard probe >= 0 else { return false }
    defer { close(probe) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr.s_addr = INADDR_ANY
    return withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(probe, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    } == 0
}

/// Whether something accepts TCP connections on 127.0.0.1:`port`.
public func acceptsConnections(port: Int) -> Bool {
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
