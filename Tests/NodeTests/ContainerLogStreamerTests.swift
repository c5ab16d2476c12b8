import Foundation
import KubeModel
import NIOCore
import Synchronization
import Testing
import TestSupport
@testable import Node

/// Reading container logs as `kubectl logs` asks, from files in the CRI log format.
@Suite struct ContainerLogStreamerTests {
    static func record(_ second: Int, _ stream: String, _ text: String, partial: Bool = false) -> String {
        "2026-12-07T10:00:\(second < 10 ? "0" : "")\(second).000000500Z \(stream) \(partial ? "P" : "F") \(text)\n"
    }

    static func read(_ path: String, _ configure: (inout NodeStreamRequest.LogOptions) -> Void = { _ in }, now: Int64 = 0,
                     running: Bool = false) async throws -> String {
        var options = NodeStreamRequest.LogOptions()
        configure(&options)
        let streamer = ContainerLogStreamer(path: path, options: options, now: now, isRunning: { running })
        var text = ""
        try await streamer.stream { text += String(buffer: $0) }
        return text
    }

    @Test func optionsSelectRecordsAsKubeletDoes() async throws {
        let directory = makeTemporaryDirectory()
        defer { removeTemporaryDirectory(directory) }
        let path = directory + "/0.log"
        let log = Self.record(1, "stdout", "one") + Self.record(2, "stderr", "two") + Self.record(3, "stdout", "thr", partial: true)
            + Self.record(3, "stdout", "ee") + Self.record(4, "stdout", "four")
        try log.write(toFile: path, atomically: true, encoding: .utf8)
        #expect(try await Self.read(path) == "one\ntwo\nthree\nfour\n")
        #expect(try await Self.read(path) { $0.tailLines = 1 } == "four\n")
        #expect(try await Self.read(path) { $0.tailLines = 2 } == "ee\nfour\n")
        #expect(try await Self.read(path) { $0.tailLines = 0 } == "")
        #expect(try await Self.read(path) { $0.tailLines = 99 } == "one\ntwo\nthree\nfour\n")
        #expect(try await Self.read(path) { $0.limitBytes = 6 } == "one\ntw")
        #expect(try await Self.read(path) { $0.timestamps = true; $0.tailLines = 1 } == "2026-12-07T10:00:04.0000005Z four\n")
        #expect(try await Self.read(path) { $0.sinceTime = "2026-12-07T10:00:03Z" } == "three\nfour\n")
        let at = try #require(RFC3339Time.nanoseconds("2026-12-07T10:00:05Z"))
        #expect(try await Self.read(path, { $0.sinceSeconds = 2 }, now: at) == "three\nfour\n")
        // A file without a final newline: the last record waits for it; no file: nothing.
        try (log + "2026-12-07T10:00:05Z stdout F half").write(toFile: path, atomically: true, encoding: .utf8)
        #expect(try await Self.read(path) { $0.tailLines = 1 } == "")
        #expect(try await Self.read(directory + "/absent.log") == "")
    }

    @Test func rfc3339TimesParseAndFormatAsGoDoes() throws {
        #expect(RFC3339Time.nanoseconds("1970-01-01T00:00:00Z") == 0)
        #expect(RFC3339Time.nanoseconds("1970-01-01T01:00:00+01:00") == 0)
        #expect(RFC3339Time.nanoseconds("2000-03-01T00:00:00.25Z") == 951_868_800_250_000_000)
        #expect(RFC3339Time.nanoseconds("2000-13-01T00:00:00Z") == nil)
        #expect(RFC3339Time.nanoseconds("2000-03-01 00:00:00Z") == nil)
        #expect(RFC3339Time.format(nanoseconds: 951_868_800_250_000_000) == "2000-03-01T00:00:00.25Z")
        #expect(RFC3339Time.format(nanoseconds: 0) == "1970-01-01T00:00:00Z")
    }

    @Test(arguments: ["rename", "copy-truncate"])
    func followingCarriesOnAcrossARotation(style: String) async throws {
        let directory = makeTemporaryDirectory()
        defer { removeTemporaryDirectory(directory) }
        let path = directory + "/0.log"
        try Self.record(1, "stdout", "line 0").write(toFile: path, atomically: true, encoding: .utf8)
        let running = Atomic<Bool>(true)
        var options = NodeStreamRequest.LogOptions()
        options.follow = true
        var streamer = ContainerLogStreamer(path: path, options: options, now: 0, isRunning: { running.load(ordering: .relaxed) })
        streamer.pollInterval = .milliseconds(10)
        let collected = Mutex("")
        let reader = Task { try await streamer.stream { chunk in collected.withLock { $0 += String(buffer: chunk) } } }
        func append(_ index: Int) throws {
            let handle = try #require(FileHandle(forWritingAtPath: path))
            handle.seekToEndOfFile()
            handle.write(Data(Self.record(1, "stdout", "line \(index)").utf8))
            try handle.close()
        }
        for index in 1..<50 {
            try append(index)
            if index % 10 == 0 {
                try? FileManager.default.removeItem(atPath: path + ".1")
                if style == "rename" {
                    // Written after the rename but before the writer reopens: in the old file.
                    try FileManager.default.moveItem(atPath: path, toPath: path + ".1")
                    let old = try #require(FileHandle(forWritingAtPath: path + ".1"))
                    old.seekToEndOfFile()
                    old.write(Data(Self.record(1, "stdout", "line \(index).5").utf8))
                    try old.close()
                    #expect(FileManager.default.createFile(atPath: path, contents: nil))
                } else {
                    try FileManager.default.copyItem(atPath: path, toPath: path + ".1")
                    truncate(path, 0)
                }
            }
            if index % 3 == 0 { try await Task.sleep(for: .milliseconds(15)) }
        }
        #expect(await eventually { collected.withLock { $0 }.contains("line 49\n") })
        running.store(false, ordering: .relaxed)
        try await reader.value
        var expected = (0..<50).map { "line \($0)\n" }
        if style == "rename" { for index in stride(from: 40, through: 10, by: -10) { expected.insert("line \(index).5\n", at: index + 1) } }
        #expect(collected.withLock { $0 } == expected.joined())
    }
}
