import Foundation
import KubeModel
import NIOCore
import NIOPosix

/// Reads a container's log file as `kubectl logs` asks: the last `tailLines` records, those
/// since a time, with or without timestamps, up to `limitBytes`, and with `follow` whatever
/// the container writes next, across rotations (a log renamed aside and reopened, as the CRI
/// runtime rotates, or copied aside and truncated, as the process runtime does), until the
/// container has ended and everything is read.
///
/// File reads run on NIO's thread pool, never on the cooperative pool.
struct ContainerLogStreamer: Sendable {
    let path: String
    let options: NodeStreamRequest.LogOptions
    /// Now, in nanoseconds since the epoch (for `sinceSeconds`).
    let now: Int64
    /// Whether the container may still write (following stops once it has ended).
    let isRunning: @Sendable () async -> Bool
    /// How often a followed log is looked at for more.
    var pollInterval: Duration = .milliseconds(100)
    /// Each record as an exec-stream record on stdout's or stderr's channel (attach), rather
    /// than text.
    var asStreamRecords = false

    /// Sends the log to `write` in chunks; returns when done (or throws what `write` threw).
    func stream(to write: (ByteBuffer) async throws -> Void) async throws {
        var since: Int64?
        if let seconds = options.sinceSeconds { since = now - Int64(seconds) * 1_000_000_000 }
        if let text = options.sinceTime, let time = RFC3339Time.nanoseconds(Substring(text)) { since = max(since ?? .min, time) }
        var remaining = options.limitBytes ?? .max
        guard var file = try await LogFile.open(path) else { return }
        var offset = 0
        if let tail = options.tailLines { offset = try await file.offsetOfLast(tail) }
        var pending: [UInt8] = []
        var output = ByteBuffer()
        func emit(_ chunk: [UInt8], final: Bool) async throws -> Bool {
            // Whole records only: a record cut by the end of a read waits for the rest.
            pending += chunk
            var start = 0
            output.clear()
            while let newline = pending[start...].firstIndex(of: UInt8(ascii: "\n")) {
                let line = Substring(decoding: pending[start..<newline], as: UTF8.self)
                start = newline + 1
                guard let record = ContainerLogRecord(line: line) else { continue }
                if let since, record.time < since { continue }
                if asStreamRecords {
                    let length = record.message.utf8.count + (record.isFullLine ? 1 : 0)
                    output.writeBytes(NodeStreamRecords.head(channel: record.stream == "stderr" ? NodeStreamRecords.stderr : NodeStreamRecords.stdout, length: length))
                }
                if options.timestamps { output.writeString(RFC3339Time.format(nanoseconds: record.time) + " ") }
                output.writeSubstring(record.message)
                if record.isFullLine { output.writeInteger(UInt8(ascii: "\n")) }
            }
            pending.removeFirst(start)
            if final { pending.removeAll() }
            if output.readableBytes > remaining { output.moveWriterIndex(to: output.readerIndex + remaining) }
            remaining -= output.readableBytes
            if output.readableBytes > 0 { try await write(output) }
            return remaining > 0
        }
        while true {
            let chunk = try await file.read(at: offset)
            if !chunk.isEmpty {
                offset += chunk.count
                guard try await emit(chunk, final: false) else { return }
                continue
            }
            guard options.follow else { return }
            // At the end: has the log been rotated, or has the container ended?
            switch try await file.rotation(of: path, readUpTo: offset) {
            case .none:
                if await !isRunning() {
                    // One more look: the last lines may have landed after the read.
                    let last = try await file.read(at: offset)
                    offset += last.count
                    _ = try await emit(last, final: true)
                    return
                }
                try await Task.sleep(for: pollInterval)
            case .renamed(let reopened):
                // What the container wrote before the runtime reopened its log is in the old file.
                while true {
                    let rest = try await file.read(at: offset)
                    guard !rest.isEmpty else { break }
                    offset += rest.count
                    guard try await emit(rest, final: false) else { return }
                }
                file = reopened
                offset = 0
            case .truncated(let copied):
                // The bytes written between the last read and the copy are in the copy.
                guard try await emit(copied, final: false) else { return }
                offset = 0
            }
        }
    }
}

/// A file descriptor closed when the last reference goes.
final class OwnedDescriptor: Sendable {
    let fd: Int32

    init(_ fd: Int32) { self.fd = fd }

    deinit { close(fd) }

    func withUnsafeFileDescriptor<T>(_ body: (Int32) throws -> T) rethrows -> T { try body(fd) }
}

/// A log file opened for reading, with its identity (its inode).
struct LogFile: Sendable {
    let descriptor: OwnedDescriptor
    let inode: UInt64

    enum Rotation: Sendable {
        case none
        /// The log was renamed aside and a new one is at the path (read from its start).
        case renamed(LogFile)
        /// The log was copied to `{path}.1` and truncated: these are the copy's bytes past what was read.
        case truncated([UInt8])
    }

    static let chunkSize = 64 * 1024

    /// Opens `path`; `nil` when there is no such file.
    static func open(_ path: String) async throws -> LogFile? {
        try await NIOThreadPool.singleton.runIfActive {
            let fd = Foundation.open(path, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { return nil }
            var info = stat()
            fstat(fd, &info)
            return LogFile(descriptor: OwnedDescriptor(fd), inode: UInt64(info.st_ino))
        }
    }

    /// Up to ``chunkSize`` bytes from `offset`; empty at the end.
    func read(at offset: Int) async throws -> [UInt8] {
        try await NIOThreadPool.singleton.runIfActive {
            descriptor.withUnsafeFileDescriptor { fd in
                var bytes = [UInt8](repeating: 0, count: Self.chunkSize)
                let count = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress, Self.chunkSize, off_t(offset)) }
                bytes.removeLast(Self.chunkSize - max(0, count))
                return bytes
            }
        }
    }

    /// Where the last `lines` lines of the file start.
    func offsetOfLast(_ lines: Int) async throws -> Int {
        guard lines > 0 else {
            return try await NIOThreadPool.singleton.runIfActive { descriptor.withUnsafeFileDescriptor { Int(lseek($0, 0, SEEK_END)) } }
        }
        return try await NIOThreadPool.singleton.runIfActive {
            descriptor.withUnsafeFileDescriptor { fd in
                var end = Int(lseek(fd, 0, SEEK_END))
                var newlines = 0
                var buffer = [UInt8](repeating: 0, count: Self.chunkSize)
                // The file's final newline ends the last line rather than starting another.
                var skipFinal = true
                while end > 0 {
                    let start = max(0, end - Self.chunkSize)
                    let count = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, end - start, off_t(start)) }
                    guard count > 0 else { break }
                    for index in stride(from: count - 1, through: 0, by: -1) where buffer[index] == UInt8(ascii: "\n") {
                        if skipFinal, start + index == end - 1, end == Int(lseek(fd, 0, SEEK_END)) { skipFinal = false; continue }
                        skipFinal = false
                        newlines += 1
                        if newlines == lines { return start + index + 1 }
                    }
                    skipFinal = false
                    end = start
                }
                return 0
            }
        }
    }

    /// Whether the file at `path` is no longer this one (renamed aside) or was truncated
    /// below `offset` (copied aside).
    func rotation(of path: String, readUpTo offset: Int) async throws -> Rotation {
        try await NIOThreadPool.singleton.runIfActive {
            var info = stat()
            if stat(path, &info) == 0, UInt64(info.st_ino) != inode {
                let fd = Foundation.open(path, O_RDONLY | O_CLOEXEC)
                guard fd >= 0 else { return .none }
                var opened = stat()
                fstat(fd, &opened)
                return .renamed(LogFile(descriptor: OwnedDescriptor(fd), inode: UInt64(opened.st_ino)))
            }
            let size = descriptor.withUnsafeFileDescriptor { fd -> Int in
                var current = stat()
                fstat(fd, &current)
                return Int(current.st_size)
            }
            guard size < offset else { return .none }
            let copy = Foundation.open(path + ".1", O_RDONLY | O_CLOEXEC)
            guard copy >= 0 else { return .truncated([]) }
            defer { close(copy) }
            var bytes: [UInt8] = []
            var position = offset
            var buffer = [UInt8](repeating: 0, count: Self.chunkSize)
            while true {
                let count = buffer.withUnsafeMutableBytes { pread(copy, $0.baseAddress, Self.chunkSize, off_t(position)) }
                guard count > 0 else { break }
                bytes += buffer[0..<count]
                position += count
            }
            return .truncated(bytes)
        }
    }
}
