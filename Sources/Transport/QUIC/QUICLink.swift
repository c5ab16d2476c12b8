import CNGTCP2
import Logging
import NIOCore

/// A ``ChannelLink`` over one QUIC connection. Each side sends on unidirectional streams of its
/// own, one per lane, opened in lane order so that a stream's number names its lane
/// (`id >> 2`): MESSAGE frames travel on their lane's stream, every other frame on the control
/// lane's stream. A lane lost packet therefore delays only that lane.
///
/// QUIC flow control is the lanes' backpressure: this side hands a lane stream's window back
/// only as the consumer takes messages (``grant(_:on:)``), and limits what the channel queues
/// per lane by the bytes its streams have not sent yet (``sendAllowance(for:)``). The control
/// stream's window is handed back as soon as its frames arrive.
///
/// Used only on the connection's event loop.
final class QUICLink: ChannelLink, @unchecked Sendable {
    /// Settings of the link with documented defaults.
    struct Options {
        /// Unsent bytes per lane stream above which the channel stops handing that lane data.
        /// Default 256 KiB.
        var sendBufferPerLane = 256 << 10
        /// The stream window the transport parameters announce (`initial_max_stream_data_uni`);
        /// a lane whose channel window is larger is extended on its first data. Default 64 KiB.
        var initialStreamWindow = 64 << 10
        /// Time the peer has to send HELLO after the handshake (server side). Default 10 s.
        var helloTimeout: Duration = .seconds(10)
        /// Time a closing link waits for the peer to acknowledge its GOAWAY. Default 2 s.
        var closeGrace: Duration = .seconds(2)
    }

    let driver: QUICConnectionDriver
    private let options: Options
    private let limits: FrameLimits
    private let logger: Logger
    /// The channel this link carries; the server side learns it from the peer's HELLO.
    private var channel: MessageChannel?
    private let resolver: SessionResolver?
    /// This side's send streams, index = lane.
    private var sendStreams: [Int64] = []
    /// Received bytes not yet decoded, per peer stream (index = lane).
    private var received: [ByteBuffer?]
    /// Per peer lane stream: the offset up to which the peer may send (nil until its first
    /// data, when it is raised to the channel's window), and the bytes received.
    private var windowLimit: [Int?]
    private var receivedBytes: [Int]
    /// Lanes for which the channel was told there is no room (it waits for ``MessageChannel/linkBecameWritable(_:)``).
    private var starvedLanes = Set<Int>()
    /// Whether the peer's HELLO has reached the channel (until then lane data waits).
    private var helloDelivered = false
    private var closing = false
    private var helloTimer: Scheduled<Void>?
    private var graceTimer: Scheduled<Void>?
    private var splitter = LaneBatchSplitter()
    /// Lanes that received data in the current read burst, and the same as flags by lane.
    private var pendingLanes: [Int] = []
    private var pendingDelivery: [Bool]
    /// Client resuming with 0-RTT: what it sent before the handshake completed, to send again
    /// should the server refuse the early data (nil once that is settled).
    private var earlySends: [ByteBuffer]?

    private init(driver: QUICConnectionDriver, channel: MessageChannel?, resolver: SessionResolver?, limits: FrameLimits, options: Options, logger: Logger) {
        self.driver = driver
        self.channel = channel
        self.resolver = resolver
        self.limits = limits
        self.options = options
        self.logger = logger
        received = Array(repeating: nil, count: limits.laneCount)
        windowLimit = Array(repeating: nil, count: limits.laneCount)
        receivedBytes = Array(repeating: 0, count: limits.laneCount)
        pendingDelivery = Array(repeating: false, count: limits.laneCount)
        let connection = driver.connection
        let peerUniType: Int64 = connection.role == .client ? 0x3 : 0x2
        connection.holdsStreamWindow = { stream in stream & 0x3 == peerUniType && stream >> 2 != 0 }
        connection.onStreamData = { [unowned self] stream, bytes, fin in
            self.received(bytes, on: stream)
            if fin { self.close(sending: GoAway(code: .protocolError, reason: "QUIC stream \(stream) ended; lane streams stay open")) }
        }
        driver.onFlushed = { [unowned self] in self.sendBuffersDrained() }
        driver.onReadBurstEnded = { [unowned self] in self.deliverReceived() }
        switch connection.role {
        case .client where connection.earlyData == .attempted:
            earlySends = []
            connection.onEarlyDataRejected = { [unowned self] in self.resendEarlyData() }
        case .client:
            break
        case .server:
            // A HELLO that came in 0-RTT could be a replay: it takes effect (and may replace a
            // node's session) only once the handshake proves the peer holds the keys.
            connection.onHandshakeCompleted = { [unowned self] in
                if self.received[0] != nil { self.deliverControl() }
            }
        }
        // The driver keeps the link until the connection ends (the channel holds it only while attached).
        driver.attachment = self
        let previous = driver.onClosed
        driver.onClosed = { [unowned self] error in
            previous?(error)
            self.connectionClosed(error)
        }
    }

    /// A client link for `channel`: attaches at once (the channel sends its HELLO). Created once
    /// the handshake completes, or before it when the connection resumes a session, so that the
    /// HELLO travels in 0-RTT with the first flight.
    static func client(driver: QUICConnectionDriver, channel: MessageChannel, options: Options, logger: Logger) -> QUICLink {
        let link = QUICLink(driver: driver, channel: channel, resolver: nil, limits: channel.configuration.limits, options: options, logger: logger)
        channel.attachAsClient(link)
        if driver.connection.earlyData == .attempted {
            // Write the HELLO now rather than on the channel's next flush, so that it joins the
            // connection's first flight: once that has left, pacing would hold a 0-RTT packet
            // until the handshake has completed anyway.
            channel.flush(link)
        }
        return link
    }

    /// A server link on an accepted connection: the first frame on the control stream must be a
    /// HELLO that `resolver` maps to a channel, within ``Options/helloTimeout``.
    static func server(driver: QUICConnectionDriver, resolver: @escaping SessionResolver, limits: FrameLimits, options: Options, logger: Logger) -> QUICLink {
        let link = QUICLink(driver: driver, channel: nil, resolver: resolver, limits: limits, options: options, logger: logger)
        let timeout = options.helloTimeout
        link.helloTimer = driver.eventLoop.assumeIsolated().scheduleTask(in: .nanoseconds(timeout.nanoseconds)) { [weak link] in
            guard let link, link.channel == nil else { return }
            link.close(sending: GoAway(code: .protocolError, reason: "no HELLO within \(timeout)"))
        }
        return link
    }

    // MARK: ChannelLink

    var eventLoop: any EventLoop { driver.eventLoop }
    var headroom: Int { 0 }
    var allocator: ByteBufferAllocator { driver.socket.allocator }
    var isWritable: Bool { !closing && !driver.closed }
    var providesFlowControl: Bool { true }

    func writeBatch(_ parts: inout [ByteBuffer]) {
        defer { parts = [] }
        guard isWritable else { return }
        if earlySends != nil {
            if driver.connection.earlyData == .attempted { earlySends!.append(contentsOf: parts) } else { earlySends = nil }
        }
        do throws(QUICError) {
            var failure: QUICError?
            var touched: UInt64 = 0
            splitter.split(parts) { lane, run in
                guard failure == nil else { return }
                do throws(QUICError) {
                    driver.connection.send(run, on: try sendStream(for: lane))
                    touched |= 1 << UInt64(lane.rawValue & 63)
                } catch {
                    failure = error
                }
            }
            if let failure { throw failure }
            // The channel stops a lane once it has used the allowance it was given: note the
            // lanes that are full now so that it hears when they drain.
            for index in sendStreams.indices.dropFirst() where touched & (1 << UInt64(index & 63)) != 0 {
                if driver.connection.unsentBytes(on: sendStreams[index]) >= options.sendBufferPerLane { starvedLanes.insert(index) }
            }
        } catch {
            logger.warning("cannot open a QUIC stream for a lane", metadata: ["error": "\(error)"])
            return close(sending: GoAway(code: .internalError, reason: "cannot open a stream: \(error)"))
        }
        driver.flush()
    }

    func sendAllowance(for lane: Lane) -> Int {
        guard lane != .control else { return .max }
        let index = Int(lane.rawValue)
        let unsent = index < sendStreams.count ? driver.connection.unsentBytes(on: sendStreams[index]) : 0
        let allowance = options.sendBufferPerLane - unsent
        if allowance <= 0 { starvedLanes.insert(index) }
        return allowance
    }

    func grant(_ bytes: Int, on lane: Lane) {
        let index = Int(lane.rawValue)
        guard !driver.closed, index < windowLimit.count, let limit = windowLimit[index] else { return }
        windowLimit[index] = limit + bytes
        driver.connection.extendStreamWindow(peerStream(for: index), by: bytes)
        driver.scheduleFlush()
    }

    /// Bytes the peer may still send on `lane` before it blocks: the stream window this side
    /// advertised, less what arrived.
    func openWindow(for lane: Lane) -> Int {
        let index = Int(lane.rawValue)
        return (windowLimit[index] ?? options.initialStreamWindow) - receivedBytes[index]
    }

    /// Bytes queued on this side's stream for `lane` that the connection has not sent yet.
    func unsentBytes(for lane: Lane) -> Int {
        let index = Int(lane.rawValue)
        return index < sendStreams.count ? driver.connection.unsentBytes(on: sendStreams[index]) : 0
    }

    func close(sending goAway: GoAway?) {
        guard !driver.closed else { return }
        helloTimer?.cancel()
        guard let goAway else {
            closing = true
            return driver.close()
        }
        guard !closing else { return }
        closing = true
        // GOAWAY travels on the control stream behind everything already queued; the
        // connection closes once the peer has acknowledged it all, or after the grace period.
        // The CONNECTION_CLOSE repeats the code and reason in case the stream data is lost.
        var frame = ByteBuffer()
        FrameCodec.encode(.goAway(goAway), into: &frame)
        if let control = try? sendStream(for: .control) { driver.connection.send(frame, on: control) }
        driver.flush()
        let grace = options.closeGrace
        graceTimer = eventLoop.assumeIsolated().scheduleTask(in: .nanoseconds(grace.nanoseconds)) { [weak self] in
            self?.driver.close(code: goAway.code.rawValue, reason: goAway.reason)
        }
        pendingGoAway = goAway
        closeIfAcknowledged(goAway)
    }

    private var pendingGoAway: GoAway?

    private func closeIfAcknowledged(_ goAway: GoAway) {
        guard sendStreams.allSatisfy({ driver.connection.unacknowledgedBytes(on: $0) == 0 }) else { return }
        graceTimer?.cancel()
        driver.close(code: goAway.code.rawValue, reason: goAway.reason)
    }

    // MARK: streams

    /// This side's stream for `lane`, opening the streams of all lanes up to it in order.
    private func sendStream(for lane: Lane) throws(QUICError) -> Int64 {
        let index = Int(lane.rawValue)
        while sendStreams.count <= index {
            sendStreams.append(try driver.connection.openUniStream())
        }
        return sendStreams[index]
    }

    /// The peer's stream for lane `index`: its unidirectional streams in lane order.
    private func peerStream(for index: Int) -> Int64 {
        Int64(index) << 2 | (driver.connection.role == .client ? 0x3 : 0x2)
    }

    /// Data arrived in order on `stream` (valid only during the call).
    private func received(_ bytes: UnsafeRawBufferPointer, on stream: Int64) {
        let index = Int(stream >> 2)
        guard stream == peerStream(for: index), index < received.count else {
            return close(sending: GoAway(code: .protocolError, reason: "data on QUIC stream \(stream), which is not a lane stream of the peer"))
        }
        if received[index] == nil {
            received[index] = allocator.buffer(capacity: max(bytes.count, 16 * 1024))
        }
        received[index]!.writeBytes(bytes)
        receivedBytes[index] += bytes.count
        if index != 0, !helloDelivered, resolver != nil {
            // A client sends messages only after the server's HELLO, which follows its own.
            return close(sending: GoAway(code: .protocolError, reason: "MESSAGE before HELLO"))
        }
        // Frames reach the channel once the read burst ends: one decode pass and one wake-up
        // of the consumer per lane for all the packets of a burst, not one per packet.
        if !pendingDelivery[index] {
            pendingDelivery[index] = true
            pendingLanes.append(index)
        }
    }

    /// The driver finished a read burst: hand every lane that received data to the channel.
    private func deliverReceived() {
        guard !pendingLanes.isEmpty else { return }
        let lanes = pendingLanes
        pendingLanes.removeAll(keepingCapacity: true)
        for index in lanes { pendingDelivery[index] = false }
        for index in lanes {
            if index == 0 {
                if driver.connection.isHandshakeCompleted { deliverControl() }
            } else if helloDelivered {
                deliver(lane: index)
            }
        }
    }

    private func deliverControl() {
        if channel == nil, let resolver {
            guard let control = received[0] else { return }
            switch HelloReader.read(control, limits: limits) {
            case .needMoreBytes:
                return
            case .refused(let goAway):
                logger.warning("refusing connection", metadata: ["reason": "\(goAway.reason)"])
                return close(sending: goAway)
            case .hello(let hello, let remainder):
                helloTimer?.cancel()
                let request = SessionRequest(
                    hello: hello, peerCertificate: driver.connection.tls.peerCertificate, remoteAddress: driver.remote,
                    backend: .quic)
                let resolved: MessageChannel
                switch resolver(request) {
                case .accept(let accepted): resolved = accepted
                case .refuse(let goAway):
                    logger.warning("refusing session", metadata: ["node": "\(hello.nodeID)", "reason": "\(goAway.reason)"])
                    return close(sending: goAway)
                }
                channel = resolved
                received[0] = remainder
                helloDelivered = true
                resolved.attachAsServer(self, hello: hello)
            }
        }
        deliver(lane: 0)
        if !helloDelivered, let channel, channel.isConnected {
            // The client's channel has now seen the server's HELLO (the first control frame).
            helloDelivered = true
            for index in 1..<received.count where received[index] != nil { deliver(lane: index) }
        }
    }

    /// Hands lane `index`'s whole frames to the channel; a partial frame stays.
    private func deliver(lane index: Int) {
        guard let channel, var buffer = received[index] else { return }
        received[index] = nil
        // An empty buffer (what a HELLO left) is dropped rather than kept for the next data.
        guard buffer.readableBytes > 0 else { return }
        if index != 0, windowLimit[index] == nil {
            let window = channel.configuration.window(forLane: index)
            if window < options.initialStreamWindow {
                logger.warning(
                    "the QUIC stream window exceeds the channel's lane window; the lane buffers up to the stream window",
                    metadata: ["lane": "\(Lane(rawValue: UInt8(index)))", "streamWindow": "\(options.initialStreamWindow)", "laneWindow": "\(window)"])
            }
            windowLimit[index] = max(window, options.initialStreamWindow)
            driver.connection.extendStreamWindow(peerStream(for: index), by: window - options.initialStreamWindow)
        }
        let before = buffer.readerIndex
        channel.receive(&buffer, from: self, wholeFrames: false)
        guard buffer.readableBytes > 0 else { return }
        if buffer.readerIndex != before {
            // Decoded messages share this buffer's storage: carry the partial frame over to a
            // fresh buffer rather than make the next append copy the whole storage.
            var rest = allocator.buffer(capacity: max(buffer.readableBytes * 2, 16 * 1024))
            rest.writeBuffer(&buffer)
            buffer = rest
        }
        received[index] = buffer
    }

    // MARK: events

    /// The server refused the 0-RTT data and ngtcp2 discarded its streams: open them again and
    /// send what went in 0-RTT (the HELLO) in 1-RTT packets.
    private func resendEarlyData() {
        guard var parts = earlySends else { return }
        earlySends = nil
        sendStreams = []
        logger.debug("the server refused 0-RTT data; sending it again", metadata: ["frames": "\(parts.count)"])
        writeBatch(&parts)
    }

    /// Packets left or acknowledgements arrived: lanes that had no room may have some now, and
    /// a closing link may have seen its GOAWAY acknowledged.
    private func sendBuffersDrained() {
        if let pendingGoAway { closeIfAcknowledged(pendingGoAway) }
        guard !starvedLanes.isEmpty, let channel else { return }
        var reopened = false
        for index in starvedLanes where driver.connection.unsentBytes(on: sendStreams[index]) <= options.sendBufferPerLane / 2 {
            starvedLanes.remove(index)
            reopened = true
        }
        if reopened { channel.linkBecameWritable(self) }
    }

    private func connectionClosed(_ error: QUICError?) {
        helloTimer?.cancel()
        graceTimer?.cancel()
        closing = true
        guard let channel else { return }
        // Data that arrived in the read burst that ended the connection (a GOAWAY followed by
        // the peer's CONNECTION_CLOSE) still reaches an attached channel; a HELLO on a closed
        // connection attaches nothing.
        deliverReceived()
        if case .ngtcp2(_, let code, _)? = error, code == NGTCP2_ERR_DRAINING,
           let close = driver.connection.peerCloseError, close.isApplication, close.code != GoAway.Code.normal.rawValue {
            // The peer closed with a GOAWAY code; its GOAWAY frame may not have arrived.
            var frame = ByteBuffer()
            FrameCodec.encode(.goAway(GoAway(code: .init(rawValue: close.code), reason: close.reason)), into: &frame)
            channel.receive(&frame, from: self, wholeFrames: true)
        }
        channel.detach(self)
    }
}
