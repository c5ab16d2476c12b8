import Foundation
import Synchronization
import Transport

/// Edges run as child processes of this tool (`--edge-process`), so the cloud's memory and CPU
/// are measured alone. Each child connects its range of edges, then reports on standard output:
/// `READY`, `COUNT n` every 250 ms, and `REPORT n buckets` when asked (a `REPORT` line on its
/// standard input); `RESET` clears its count and latencies.
final class EdgeProcesses: Sendable {
    private let processes: [Process]
    private let inputs: [FileHandle]
    private let box: StateBox

    /// What the children reported, shared with their output readers.
    private final class StateBox: Sendable {
        let state = Mutex<State>(State())
    }

    fileprivate struct State {
        var ready = 0
        var counts: [Int: Int] = [:]
        var reports: [Int: (Int, String)] = [:]
        var connected: [Int: Int] = [:]
        var failures: [String] = []
    }

    init(executable: String, arguments: (Int, Range<Int>) -> [String], ranges: [Range<Int>]) throws {
        var processes: [Process] = []
        var inputs: [FileHandle] = []
        let box = StateBox()
        self.box = box
        for (index, range) in ranges.enumerated() {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: executable)
            process.arguments = arguments(index, range)
            let input = Pipe()
            let output = Pipe()
            process.standardInput = input
            process.standardOutput = output
            process.standardError = FileHandle.standardError
            processes.append(process)
            inputs.append(input.fileHandleForWriting)
            let pending = Mutex<String>("")
            output.fileHandleForReading.readabilityHandler = { handle in
                let data = handle.availableData
                guard !data.isEmpty else {
                    handle.readabilityHandler = nil
                    return
                }
                let lines: [Substring] = pending.withLock { text in
                    text += String(decoding: data, as: UTF8.self)
                    guard let last = text.lastIndex(of: "\n") else { return [] }
                    let complete = text[..<last]
                    let lines = complete.split(separator: "\n")
                    text = String(text[text.index(after: last)...])
                    return lines
                }
                for line in lines { Self.handle(line, from: index, in: box) }
            }
        }
        self.processes = processes
        self.inputs = inputs
        for process in processes { try process.run() }
    }

    private static func handle(_ line: Substring, from index: Int, in box: StateBox) {
        let parts = line.split(separator: " ", maxSplits: 2)
        box.state.withLock { state in
            switch parts.first {
            case "READY": state.ready += 1
            case "CONNECTED": state.connected[index] = parts.count > 1 ? Int(parts[1]) ?? 0 : 0
            case "COUNT": state.counts[index] = parts.count > 1 ? Int(parts[1]) ?? 0 : 0
            case "REPORT": state.reports[index] = (Int(parts[1]) ?? 0, parts.count > 2 ? String(parts[2]) : "")
            case "FAILED": state.failures.append(String(line))
            default: break
            }
        }
    }

    var readyCount: Int { box.state.withLock { $0.ready } }
    var connectedCount: Int { box.state.withLock { $0.connected.values.reduce(0, +) } }
    var receivedCount: Int { box.state.withLock { $0.counts.values.reduce(0, +) } }
    var failures: [String] { box.state.withLock { $0.failures } }

    func send(_ command: String) {
        for input in inputs { try? input.write(contentsOf: Data((command + "\n").utf8)) }
    }

    func reset() {
        box.state.withLock { $0.counts = [:] }
        send("RESET")
    }

    /// Asks every child for its count and latencies, merged.
    func report() async -> (Int, LatencyHistogram) {
        box.state.withLock { $0.reports = [:] }
        send("REPORT")
        while box.state.withLock({ $0.reports.count }) < processes.count {
            try? await Task.sleep(for: .milliseconds(20))
        }
        var histogram = makeLatencyHistogram()
        let reports = box.state.withLock { $0.reports.values.map { $0 } }
        var total = 0
        for (count, buckets) in reports {
            total += count
            mergeBuckets(Substring(buckets), into: &histogram)
        }
        return (total, histogram)
    }

    func stop() {
        for input in inputs { try? input.close() }
        for process in processes { process.waitUntilExit() }
    }

    /// The body of `--edge-process`: connect, then serve the parent's commands until its input closes.
    static func runChild(backend: TransportBackend, port: Int, directory: String, trustRoots: String, range: Range<Int>, lanes: [Lane], channel: ChannelConfiguration) async {
        let edges: EdgeSet
        do {
            edges = try await EdgeSet.connect(
                indices: range, backend: backend, port: port,
                credentials: { benchCredentials(directory: directory, index: $0, trustRoots: trustRoots) }, channel: channel,
                parallelism: 16, onConnected: { count in if count % 100 == 0 { emit("CONNECTED \(count)") } })
        } catch {
            emit("FAILED \(error)")
            return
        }
        emit("CONNECTED \(edges.channels.count)")
        edges.startConsuming(lanes: lanes)
        emit("READY")
        let ticker = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: .milliseconds(250))
                emit("COUNT \(edges.received.load(ordering: .relaxed))")
            }
        }
        // Standard input is read on its own thread, never on one of the cooperative pool's.
        await withCheckedContinuation { (finished: CheckedContinuation<Void, Never>) in
            Thread {
                while let line = readLine() {
                    switch line {
                    case "RESET":
                        edges.latency.reset()
                        edges.received.store(0, ordering: .relaxed)
                    case "REPORT":
                        emit("REPORT \(edges.received.load(ordering: .relaxed)) \(encodeBuckets(edges.latency.snapshot))")
                    default:
                        break
                    }
                }
                finished.resume()
            }.start()
        }
        ticker.cancel()
        exit(0)
    }
}

/// Writes one line to standard output at once (the parent reads it as it comes).
private func emit(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}
