import CMosquitto
import Foundation
import NIOCore
import Synchronization

/// Why an MQTT operation failed, with libmosquitto's words for it.
public enum MQTTError: Error, Equatable, CustomStringConvertible {
    /// A libmosquitto call returned an error code.
    case library(call: String, code: Int32, message: String)
    /// The broker refused the connection (CONNACK reason).
    case refused(code: Int32, message: String)
    /// No CONNACK within the timeout (a broker that is down or unreachable).
    case connectTimedOut(host: String, port: Int)
    /// The client is not connected.
    case notConnected

    /// Whether the call failed only because the broker connection is down (try again once it
    /// is back).
    public var isConnectionLost: Bool {
        if case .library(_, let code, _) = self { return code == MOSQ_ERR_NO_CONN.rawValue || code == MOSQ_ERR_CONN_LOST.rawValue }
        return self == .notConnected
    }

    public var description: String {
        switch self {
        case .library(let call, let code, let message): "\(call) failed (\(code)): \(message)"
        case .refused(let code, let message): "the broker refused the connection (\(code)): \(message)"
        case .connectTimedOut(let host, let port): "no answer from the MQTT broker at \(host):\(port)"
        case .notConnected: "the MQTT client is not connected"
        }
    }
}

/// One message from the broker.
public struct MQTTMessage: Sendable, Equatable {
    public var topic: String
    public var payload: ByteBuffer
    public var qos: Int
    public var retain: Bool
}

/// An MQTT 3.1.1 client on libmosquitto: its network loop runs on libmosquitto's own thread
/// (started by ``connect(host:port:keepalive:timeout:)``, stopped by ``disconnect()``), which
/// also reconnects after the broker goes away. Callbacks reach Swift through C trampolines and
/// a context that lives as long as the client; no pointer leaves this file.
public final class MQTTClient: Sendable {
    private let handle: MosquittoHandle
    private let context: CallbackContext
    /// Messages from subscriptions, in arrival order; older ones are dropped (counted) beyond
    /// the buffer.
    public let messages: AsyncStream<MQTTMessage>

    /// Creates a client with `clientID` (empty: the broker picks one, clean session required).
    public init(clientID: String = "", cleanSession: Bool = true, messageBuffer: Int = 10_000) throws {
        Self.initializeLibrary
        let (stream, continuation) = AsyncStream.makeStream(of: MQTTMessage.self, bufferingPolicy: .bufferingNewest(messageBuffer))
        messages = stream
        context = CallbackContext(continuation: continuation)
        let opaque = Unmanaged.passUnretained(context).toOpaque()
        guard let raw = mosquitto_new(clientID.isEmpty ? nil : clientID, cleanSession, opaque) else {
            throw MQTTError.library(call: "mosquitto_new", code: Int32(errno), message: String(cString: strerror(errno)))
        }
        handle = MosquittoHandle(raw)
        mosquitto_connect_callback_set(raw) { _, object, code in
            guard let object else { return }
            Unmanaged<CallbackContext>.fromOpaque(object).takeUnretainedValue().connected(code: code)
        }
        mosquitto_disconnect_callback_set(raw) { _, object, code in
            guard let object else { return }
            Unmanaged<CallbackContext>.fromOpaque(object).takeUnretainedValue().disconnected(code: code)
        }
        mosquitto_message_callback_set(raw) { _, object, message in
            guard let object, let message else { return }
            Unmanaged<CallbackContext>.fromOpaque(object).takeUnretainedValue().received(message.pointee)
        }
        mosquitto_subscribe_callback_set(raw) { _, object, mid, _, _ in
            guard let object else { return }
            Unmanaged<CallbackContext>.fromOpaque(object).takeUnretainedValue().acknowledged(mid)
        }
        mosquitto_publish_callback_set(raw) { _, object, mid in
            guard let object else { return }
            Unmanaged<CallbackContext>.fromOpaque(object).takeUnretainedValue().acknowledged(mid)
        }
    }

    deinit {
        mosquitto_loop_stop(handle.raw, true)
        mosquitto_destroy(handle.raw)
        context.finish()
    }

    private static let initializeLibrary: Void = { _ = mosquitto_lib_init() }()

    /// Username and password for the broker (before connecting).
    public func setCredentials(username: String, password: String?) throws {
        try check(mosquitto_username_pw_set(handle.raw, username, password), "mosquitto_username_pw_set")
    }

    /// TLS to the broker with `caFile` (and a client certificate, if given), before connecting.
    public func setTLS(caFile: String, certificateFile: String? = nil, keyFile: String? = nil) throws {
        try check(mosquitto_tls_set(handle.raw, caFile, nil, certificateFile, keyFile, nil), "mosquitto_tls_set")
    }

    /// Connects and waits for the broker's CONNACK; starts the network thread, which keeps
    /// reconnecting (1 s, doubling to 30 s) if the connection drops later.
    /// Starts connecting without waiting: the network thread keeps trying (1–30 s apart) until
    /// the broker answers, and ``onConnected(_:)`` runs each time it does.
    public func connectInBackground(host: String, port: Int, keepalive: Int = 60) throws {
        try check(mosquitto_reconnect_delay_set(handle.raw, 1, 30, true), "mosquitto_reconnect_delay_set")
        try check(mosquitto_loop_start(handle.raw), "mosquitto_loop_start")
        let started = mosquitto_connect_async(handle.raw, host, Int32(port), Int32(keepalive))
        guard started == MOSQ_ERR_SUCCESS.rawValue || started == MOSQ_ERR_ERRNO.rawValue else {
            mosquitto_loop_stop(handle.raw, true)
            try check(started, "mosquitto_connect_async")
            return
        }
    }

    public func connect(host: String, port: Int, keepalive: Int = 60, timeout: Duration = .seconds(5)) async throws {
        try check(mosquitto_reconnect_delay_set(handle.raw, 1, 30, true), "mosquitto_reconnect_delay_set")
        let waiter = context.expectConnection()
        try check(mosquitto_loop_start(handle.raw), "mosquitto_loop_start")
        let started = mosquitto_connect_async(handle.raw, host, Int32(port), Int32(keepalive))
        guard started == MOSQ_ERR_SUCCESS.rawValue || started == MOSQ_ERR_ERRNO.rawValue else {
            mosquitto_loop_stop(handle.raw, true)
            try check(started, "mosquitto_connect_async")
            return
        }
        let code = await context.waitForConnection(waiter, timeout: timeout)
        switch code {
        case 0?:
            return
        case let code?:
            mosquitto_disconnect(handle.raw)
            mosquitto_loop_stop(handle.raw, true)
            throw MQTTError.refused(code: code, message: String(cString: mosquitto_connack_string(code)))
        case nil:
            mosquitto_disconnect(handle.raw)
            mosquitto_loop_stop(handle.raw, true)
            throw MQTTError.connectTimedOut(host: host, port: port)
        }
    }

    /// Calls `handler` on libmosquitto's thread each time the broker accepts a connection,
    /// the first and every automatic reconnect (a clean session must subscribe again).
    public func onConnected(_ handler: @escaping @Sendable () -> Void) {
        context.setConnectHandler(handler)
    }

    /// Whether the broker accepted the connection and it has not dropped since.
    public var isConnected: Bool { context.isConnected }

    /// Subscribes to `topic` (wildcards allowed) at `qos`; returns the message id.
    @discardableResult
    public func subscribe(_ topic: String, qos: Int = 1) throws -> Int32 {
        var mid: Int32 = 0
        try check(mosquitto_subscribe(handle.raw, &mid, topic, Int32(qos)), "mosquitto_subscribe")
        return mid
    }

    /// Publishes `payload` on `topic`; returns the message id (QoS 1: acknowledged later).
    @discardableResult
    public func publish(_ topic: String, payload: ByteBuffer, qos: Int = 1, retain: Bool = false) throws -> Int32 {
        var mid: Int32 = 0
        let result = payload.withUnsafeReadableBytes { bytes in
            mosquitto_publish(handle.raw, &mid, topic, Int32(bytes.count), bytes.baseAddress, Int32(qos), retain)
        }
        try check(result, "mosquitto_publish")
        return mid
    }

    /// Waits until the broker acknowledged message `mid` (SUBACK, or PUBACK for QoS 1).
    public func waitForAcknowledgement(_ mid: Int32, timeout: Duration = .seconds(5)) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if context.wasAcknowledged(mid) { return true }
            try? await Task.sleep(for: .milliseconds(2))
        }
        return context.wasAcknowledged(mid)
    }

    /// Disconnects and stops the network thread.
    public func disconnect() {
        mosquitto_disconnect(handle.raw)
        mosquitto_loop_stop(handle.raw, false)
    }

    /// Disconnects, stops the network thread and ends ``messages``; the client is not used again.
    public func close() {
        closed.store(true, ordering: .relaxed)
        disconnect()
        context.finish()
    }

    /// Whether ``close()`` was called.
    public var isClosed: Bool { closed.load(ordering: .relaxed) }
    private let closed = Atomic<Bool>(false)

    /// Messages dropped because nobody read ``messages`` in time.
    public var droppedMessages: Int { context.dropped.load(ordering: .relaxed) }

    private func check(_ result: Int32, _ call: String) throws {
        guard result != MOSQ_ERR_SUCCESS.rawValue else { return }
        let message = result == MOSQ_ERR_ERRNO.rawValue ? String(cString: strerror(errno)) : String(cString: mosquitto_strerror(result))
        throw MQTTError.library(call: call, code: result, message: message)
    }
}

/// The `struct mosquitto *`, owned by its client.
private final class MosquittoHandle: @unchecked Sendable {
    // libmosquitto's functions are safe to call from any thread once the loop runs.
    let raw: OpaquePointer
    init(_ raw: OpaquePointer) { self.raw = raw }
}

/// What the C callbacks update, on libmosquitto's thread.
private final class CallbackContext: Sendable {
    private let continuation: AsyncStream<MQTTMessage>.Continuation
    let dropped = Atomic<Int>(0)
    private let state = Mutex(State())

    struct State {
        var connectHandler: (@Sendable () -> Void)?
        var connected = false
        var connectCode: Int32?
        var connectWaiter = 0
        var acknowledged: Set<Int32> = []
    }

    init(continuation: AsyncStream<MQTTMessage>.Continuation) { self.continuation = continuation }

    var isConnected: Bool { state.withLock { $0.connected } }

    func expectConnection() -> Int {
        state.withLock { state in
            state.connectCode = nil
            state.connectWaiter += 1
            return state.connectWaiter
        }
    }

    func waitForConnection(_ waiter: Int, timeout: Duration) async -> Int32? {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let code = state.withLock({ $0.connectCode }) { return code }
            try? await Task.sleep(for: .milliseconds(2))
        }
        return state.withLock { $0.connectCode }
    }

    func connected(code: Int32) {
        let handler = state.withLock { state in
            state.connectCode = code
            state.connected = code == 0
            return code == 0 ? state.connectHandler : nil
        }
        handler?()
    }

    func setConnectHandler(_ handler: @escaping @Sendable () -> Void) {
        state.withLock { $0.connectHandler = handler }
    }

    func disconnected(code: Int32) {
        state.withLock { $0.connected = false }
    }

    func received(_ message: mosquitto_message) {
        let topic = message.topic.map { String(cString: $0) } ?? ""
        var payload = ByteBuffer()
        if let bytes = message.payload, message.payloadlen > 0 {
            payload.writeBytes(UnsafeRawBufferPointer(start: bytes, count: Int(message.payloadlen)))
        }
        if case .dropped = continuation.yield(MQTTMessage(topic: topic, payload: payload, qos: Int(message.qos), retain: message.retain)) {
            dropped.add(1, ordering: .relaxed)
        }
    }

    func acknowledged(_ mid: Int32) {
        _ = state.withLock { $0.acknowledged.insert(mid) }
    }

    func wasAcknowledged(_ mid: Int32) -> Bool {
        state.withLock { $0.acknowledged.remove(mid) != nil }
    }

    func finish() { continuation.finish() }
}
