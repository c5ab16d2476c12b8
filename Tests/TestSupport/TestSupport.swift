// Helpers every test target shares: messages that name their index, temporary directories,
// polling, collecting, running commands.
import Foundation
import NIOCore
import NIOConcurrencyHelpers
import NIOPosix
import Synchronization
import Transport

/// Builds messages whose content names their index, so order and loss are checkable.
public func makeMessage(_ index: Int, size: Int = 0, resource: String = "default/pod/test") -> Message {
    var content = ByteBuffer()
    content.writeString("m\(index)")
    if size > content.readableBytes { content.writeRepeatingByte(0x61, count: size - content.readableBytes) }
    return Message(
        router: MessageRouter(source: "test", destination: "peer", group: "resource", operation: "update", resource: resource),
        content: content)
}

/// The index a message made by ``makeMessage(_:size:resource:)`` carries.
public func index(of message: Message) -> Int? {
    var content = message.content
    guard content.readInteger(as: UInt8.self) == UInt8(ascii: "m") else { return nil }
    var digits = ""
    while let byte = content.readInteger(as: UInt8.self), byte >= 0x30, byte <= 0x39 { digits.append(Character(UnicodeScalar(byte))) }
    return Int(digits)
}

/// A fresh temporary directory, removed by the caller with `removeTemporaryDirectory`.
public func makeTemporaryDirectory() -> String {
    let path = NSTemporaryDirectory() + "transport-tests-" + UUID().uuidString
    try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

public func removeTemporaryDirectory(_ path: String) {
    try? FileManager.default.removeItem(atPath: path)
}

/// Collects `count` messages from `lane` or fails after `timeout`.
public func collect(_ count: Int, from endpoint: some ChannelEndpoint, lane: Lane, timeout: Duration = .seconds(20)) async throws -> [Message] {
    try await withTimeout(timeout, "\(count) messages on \(lane)") {
        var received: [Message] = []
        for await message in endpoint.messages(on: lane) {
            received.append(message)
            if received.count == count { break }
        }
        return received
    }
}

/// Runs `body`, or throws ``TestTimeout`` after `timeout`. A body that cannot be cancelled
/// (a lane iterator waiting for a message that never comes) is left behind rather than awaited,
/// so a missing message fails the test instead of hanging it.
public func withTimeout<T: Sendable>(_ timeout: Duration, _ what: String, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    let outcome = OnceBox<Result<T, any Error>>()
    return try await withCheckedThrowingContinuation { continuation in
        Task {
            let result: Result<T, any Error>
            do { result = .success(try await body()) } catch { result = .failure(error) }
            if outcome.set(result) { continuation.resume(with: result) }
        }
        Task {
            try? await Task.sleep(for: timeout)
            let result = Result<T, any Error>.failure(TestTimeout(description: "waited \(timeout) for \(what)"))
            if outcome.set(result) { continuation.resume(with: result) }
        }
    }
}

/// Holds the first value set.
final class OnceBox<T: Sendable>: Sendable {
    private let value = NIOLockedValueBox<T?>(nil)

    /// Stores `new` unless a value is already there; returns whether it did.
    func set(_ new: T) -> Bool {
        value.withLockedValue { stored in
            guard stored == nil else { return false }
            stored = new
            return true
        }
    }
}

/// A test waited longer than it allows.
public struct TestTimeout: Error, CustomStringConvertible {
    public var description: String
    public init(description: String) { self.description = description }
}

/// Polls an asynchronous `condition` until it holds or `timeout` passes.
public func eventually(timeout: Duration = .seconds(10), _ condition: () async -> Bool) async -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if await condition() { return true }
        try? await Task.sleep(for: .milliseconds(5))
    }
    return await condition()
}

/// Polls `condition` until it holds or `timeout` passes.
public func eventually(timeout: Duration = .seconds(10), _ condition: () -> Bool) async -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if condition() { return true }
        try? await Task.sleep(for: .milliseconds(5))
    }
    return condition()
}

public let testGroup = MultiThreadedEventLoopGroup.singleton

/// Runs `executable` with `arguments` (in `directory`, if given); returns its exit
/// status and its standard output and error together.
public func runProcess(_ executable: String, _ arguments: [String], in directory: String? = nil, environment: [String: String] = [:]) throws -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    if !environment.isEmpty { process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
    if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
    let output = Pipe()
    process.standardOutput = output
    process.standardError = output
    try process.run()
    let text = String(decoding: readToEnd(output.fileHandleForReading.fileDescriptor), as: UTF8.self)
    process.waitUntilExit()
    return (process.terminationStatus, text)
}

/// Everything a pipe gives until its end, read again after a signal interrupts a read
/// (Foundation's `readDataToEndOfFile` traps on `EINTR`).
public func readToEnd(_ descriptor: Int32) -> [UInt8] {
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65_536)
    while true {
        let count = chunk.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
        if count > 0 {
            bytes += chunk[..<count]
        } else if count == 0 || errno != EINTR {
            return bytes
        }
    }
}

/// A thread-safe counter for callbacks in tests.
public final class Counter: Sendable {
    private let count = Mutex(0)
    public init() {}
    public func increment() { count.withLock { $0 += 1 } }
    public var value: Int { count.withLock { $0 } }
}

/// ``runProcess(_:_:in:)`` on a thread of its own, so that waiting for the process never holds
/// one of the few threads Swift concurrency runs tasks on (a server in this process may need it).
public func runProcessOffPool(_ executable: String, _ arguments: [String], in directory: String? = nil, environment: [String: String] = [:]) async throws -> (status: Int32, output: String) {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread {
            continuation.resume(with: Result { try runProcess(executable, arguments, in: directory, environment: environment) })
        }
    }
}
