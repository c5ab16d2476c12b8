// Baselines the benchmark tools measure in the same run as the figures they put beside them.
import Foundation

/// Runs `command` with bash; returns its exit status and standard output.
public func shell(_ command: String) -> (Int32, String) {
    let process = Process()
    let pipe = Pipe()
    process.executableURL = URL(fileURLWithPath: "/bin/bash")
    process.arguments = ["-c", command]
    process.standardOutput = pipe
    process.standardError = FileHandle.nullDevice
    try? process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: data, as: UTF8.self))
}

/// iperf3 over loopback for 5 s: TCP, or UDP at an unlimited rate with `udpPayload`-byte
/// datagrams (the rate the receiver saw, losses excluded). Bytes per second.
public func iperf3Baseline(udpPayload: Int? = nil) -> Double? {
    let port = Int.random(in: 20_000..<30_000)
    let udp = udpPayload.map { " -u -b 0 -l \($0)" } ?? ""
    let (status, output) = shell("iperf3 -s -1 -B 127.0.0.1 -p \(port) >/dev/null 2>&1 & sleep 0.5; iperf3 -c 127.0.0.1 -p \(port) -t 5\(udp) -J; wait")
    guard status == 0, let data = output.data(using: .utf8),
          let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
          let end = json["end"] as? [String: Any]
    else { return nil }
    if udpPayload != nil {
        // UDP: the sender's rate less what the receiver reports lost.
        guard let sum = end["sum"] as? [String: Any], let bits = sum["bits_per_second"] as? Double else { return nil }
        let lost = (sum["lost_percent"] as? Double) ?? 0
        return bits / 8 * (1 - lost / 100)
    }
    guard let received = end["sum_received"] as? [String: Any], let bits = received["bits_per_second"] as? Double else { return nil }
    return bits / 8
}
