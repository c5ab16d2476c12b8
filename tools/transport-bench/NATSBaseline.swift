import BenchSupport
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// nats-server (Debian) on loopback, one publisher and one subscriber on plain TCP speaking
/// the NATS text protocol: the small-message broker baseline. Returns messages per second
/// (first publish to last delivery) and the latency histogram, or `nil` if nats-server is missing.
func natsBaseline(messages: Int, payload: Int) -> (rate: Double, latency: LatencyHistogram)? {
    guard FileManager.default.isExecutableFile(atPath: "/usr/sbin/nats-server") || shell("command -v nats-server").0 == 0 else { return nil }
    let port = Int.random(in: 30_000..<40_000)
    let server = Process()
    server.executableURL = URL(fileURLWithPath: "/bin/bash")
    server.arguments = ["-c", "exec nats-server -a 127.0.0.1 -p \(port)"]
    server.standardOutput = FileHandle.nullDevice
    server.standardError = FileHandle.nullDevice
    guard (try? server.run()) != nil else { return nil }
    defer {
        server.terminate()
        server.waitUntilExit()
    }
    var subscriber: Int32 = -1
    for _ in 0..<50 {
        subscriber = connectLoopback(port: port)
        if subscriber >= 0 { break }
        usleep(100_000)
    }
    guard subscriber >= 0 else { return nil }
    defer { close(subscriber) }
    writeAll(subscriber, Array("CONNECT {\"verbose\":false,\"pedantic\":false}\r\nSUB bench 1\r\nPING\r\n".utf8))
    var reader = NATSReader(socket: subscriber)
    guard reader.waitForPong() else { return nil }
    let publisher = connectLoopback(port: port)
    guard publisher >= 0 else { return nil }
    defer { close(publisher) }
    writeAll(publisher, Array("CONNECT {\"verbose\":false,\"pedantic\":false}\r\n".utf8))

    let size = max(payload, 8)
    let sender = Thread {
        var batch: [UInt8] = []
        batch.reserveCapacity(64 * (size + 32))
        let head = Array("PUB bench \(size)\r\n".utf8)
        for index in 0..<messages {
            batch += head
            var stamp = monotonicNanoseconds().bigEndian
            withUnsafeBytes(of: &stamp) { batch += $0 }
            batch += [UInt8](repeating: 0x61, count: size - 8)
            batch += [13, 10]
            if index % 64 == 63 || index == messages - 1 {
                writeAll(publisher, batch)
                batch.removeAll(keepingCapacity: true)
            }
        }
    }
    let started = monotonicNanoseconds()
    sender.start()
    var latency = makeLatencyHistogram()
    var received = 0
    while received < messages, let stamp = reader.nextMessageStamp() {
        let now = monotonicNanoseconds()
        _ = latency.record(max((now > stamp ? now - stamp : 0) / 1_000, 1))
        received += 1
    }
    let seconds = Double(monotonicNanoseconds() - started) / 1e9
    guard received == messages else { return nil }
    return (Double(messages) / seconds, latency)
}

private func connectLoopback(port: Int) -> Int32 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return -1 }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let result = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard result == 0 else {
        close(fd)
        return -1
    }
    var one: Int32 = 1
    setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    return fd
}

private func writeAll(_ fd: Int32, _ bytes: [UInt8]) {
    var offset = 0
    while offset < bytes.count {
        let written = bytes[offset...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        if written <= 0 { return }
        offset += written
    }
}

/// Reads the subscriber's stream: `MSG <subject> <sid> <size>\r\n<payload>\r\n`, `PING`, `PONG`.
private struct NATSReader {
    let socket: Int32
    var buffer: [UInt8] = []
    var position = 0

    init(socket: Int32) { self.socket = socket }

    private mutating func fill() -> Bool {
        if position > 0, position == buffer.count {
            buffer.removeAll(keepingCapacity: true)
            position = 0
        } else if position > 1 << 20 {
            buffer.removeFirst(position)
            position = 0
        }
        var chunk = [UInt8](repeating: 0, count: 256 << 10)
        let count = chunk.withUnsafeMutableBytes { read(socket, $0.baseAddress, $0.count) }
        guard count > 0 else { return false }
        buffer += chunk[0..<count]
        return true
    }

    private mutating func line() -> String? {
        while true {
            if let end = buffer[position...].firstIndex(of: 10) {
                let text = String(decoding: buffer[position..<end], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
                position = end + 1
                return text
            }
            guard fill() else { return nil }
        }
    }

    mutating func waitForPong() -> Bool {
        while let text = line() {
            if text == "PONG" { return true }
        }
        return false
    }

    /// The send timestamp of the next message.
    mutating func nextMessageStamp() -> UInt64? {
        while let text = line() {
            guard text.hasPrefix("MSG "), let size = text.split(separator: " ").last.flatMap({ Int($0) }) else { continue }
            while buffer.count - position < size + 2 { guard fill() else { return nil } }
            var stamp: UInt64 = 0
            for byte in buffer[position..<position + 8] { stamp = stamp << 8 | UInt64(byte) }
            position += size + 2
            return stamp
        }
        return nil
    }
}
