import CNGTCP2
import NIOCore

/// Runs one ``QUICConnection`` on the event loop of its UDP socket: feeds it datagrams, writes
/// the packets it produces, and re-arms its timer from `ngtcp2_conn_get_expiry`. Used only on
/// that event loop.
final class QUICConnectionDriver: @unchecked Sendable {
    let connection: QUICConnection
    /// The UDP socket the connection sends from (a client's changes when it rebinds).
    private(set) var socket: any Channel
    private(set) var remote: SocketAddress
    /// Scheduled wake-ups and the ngtcp2 deadline each was set for. A wake-up is never
    /// cancelled to move it later (cancelling is a linear search of the event loop's task queue,
    /// which holds a task per connection: with thousands of connections it dominated the
    /// server's profile); one that fires early finds nothing due and re-arms.
    private var timers: [(deadline: UInt64, task: Scheduled<Void>)] = []
    private var flushScheduled = false
    private(set) var closed = false
    /// Called once when the connection ends, with the error that ended it (nil: closed by us).
    var onClosed: ((QUICError?) -> Void)?
    /// Called after every write attempt, which follows every read: stream data may have left
    /// the send buffers or been acknowledged.
    var onFlushed: (() -> Void)?
    /// Called when the datagrams of a read burst have all been processed, before the write
    /// that follows: stream data received in the burst can be handed on in one pass.
    var onReadBurstEnded: (() -> Void)?
    /// An object that lives as long as the connection (the channel link over it).
    var attachment: AnyObject?

    /// What the driver did on the socket.
    struct Counters {
        var packetsSent = 0
        var sendBatches = 0
        var datagramsReceived = 0
        var timerExpiries = 0
        /// Datagrams that arrived marked ECT(0), ECT(1) or CE.
        var ecnMarkedDatagramsReceived = 0
    }

    /// NIO's name for ngtcp2's ECN codepoint.
    static func ecnState(_ codepoint: UInt32) -> NIOExplicitCongestionNotificationState {
        switch Int32(codepoint) {
        case NGTCP2_ECN_ECT_0: .transportCapableFlag0
        case NGTCP2_ECN_ECT_1: .transportCapableFlag1
        case NGTCP2_ECN_CE: .congestionExperienced
        default: .transportNotCapable
        }
    }

    /// ngtcp2's ECN codepoint for what the socket reported.
    static func ecnCodepoint(_ state: NIOExplicitCongestionNotificationState?) -> UInt32 {
        switch state {
        case .transportCapableFlag0: UInt32(NGTCP2_ECN_ECT_0)
        case .transportCapableFlag1: UInt32(NGTCP2_ECN_ECT_1)
        case .congestionExperienced: UInt32(NGTCP2_ECN_CE)
        case .transportNotCapable, nil: UInt32(NGTCP2_ECN_NOT_ECT)
        }
    }
    private(set) var counters = Counters()

    /// A snapshot of the connection and of ``counters``.
    var statistics: QUICConnectionStatistics { connection.statistics(counters: counters) }

    /// Packets written per event-loop turn before the loop is given back.
    static let packetsPerTurn = 256

    /// Packets sent per `sendmsg` with UDP segmentation offload (1: no GSO).
    let maxSegments: Int

    /// Whether packets leave with the ECN codepoint ngtcp2 chose (else unmarked, and ngtcp2's
    /// path validation fails, so it stops asking).
    let marksECN: Bool

    init(connection: QUICConnection, socket: any Channel, remote: SocketAddress, maxSegments: Int = 1, marksECN: Bool = true) {
        self.marksECN = marksECN
        self.connection = connection
        self.socket = socket
        self.remote = remote
        self.maxSegments = maxSegments
    }

    var eventLoop: any EventLoop { socket.eventLoop }

    /// Whether datagrams were processed since the last write (the endpoint writes once per read burst).
    var awaitsFlush = false

    /// A datagram for this connection arrived from `address`. With `flushNow` false the caller
    /// calls ``flush()`` once it has handed over every datagram of the read (one write, and one
    /// ACK, for a burst rather than one per datagram).
    func receive(
        _ datagram: ByteBuffer, from address: SocketAddress, ecn: NIOExplicitCongestionNotificationState? = nil, flushNow: Bool = true
    ) {
        guard !closed else { return }
        counters.datagramsReceived += 1
        let codepoint = Self.ecnCodepoint(ecn)
        if codepoint != UInt32(NGTCP2_ECN_NOT_ECT) { counters.ecnMarkedDatagramsReceived += 1 }
        do {
            receiving = true
            defer { receiving = false }
            try connection.receive(datagram, from: address, ecn: codepoint, now: cngtcp2_timestamp())
            remote = address
        } catch {
            return finish(error)
        }
        if flushNow { endReadBurst() } else { awaitsFlush = true }
    }

    /// The datagrams of a read burst have been handed over: the connection writes first (the
    /// ACKs leave before the received data is decoded, so the peer's RTT samples and its
    /// congestion window do not include this side's processing time), then received data goes
    /// on, and whatever it prompted is written.
    func endReadBurst() {
        guard !closed else { return }
        flush()
        guard let onReadBurstEnded, !closed else { return }
        onReadBurstEnded()
        flush()
    }

    /// Set while ngtcp2 reads a packet: its callbacks (stream data reaching the channel) must
    /// not write packets or close the connection then, so those wait until the read returns.
    private var receiving = false

    /// Writes the packets the connection has ready on the next event-loop turn (many requests
    /// in one turn make one write).
    func scheduleFlush() {
        guard !flushScheduled, !closed else { return }
        flushScheduled = true
        eventLoop.assumeIsolated().execute { [self] in
            flushScheduled = false
            flush()
        }
    }

    /// Writes every packet the connection has ready (up to ``packetsPerTurn``, then again on
    /// the next turn) and re-arms the timer.
    func flush() {
        if receiving {
            // Inside ngtcp2's read: the caller writes once the read returns.
            awaitsFlush = true
            return
        }
        awaitsFlush = false
        guard !closed else { return }
        do {
            var written = 0
            let now = cngtcp2_timestamp()
            let maxSegments = maxSegments
            while written < Self.packetsPerTurn {
                let count = try connection.writePackets(now: now, maxPackets: 64, maxSegments: maxSegments, allocator: socket.allocator) { batch, segmentSize, ecn in
                    let segmented = batch.readableBytes > segmentSize
                    let marked = marksECN && ecn != UInt32(NGTCP2_ECN_NOT_ECT)
                    let metadata = segmented || marked
                        ? AddressedEnvelope<ByteBuffer>.Metadata(
                            ecnState: marked ? Self.ecnState(ecn) : .transportNotCapable, packetInfo: nil, segmentSize: segmented ? segmentSize : nil)
                        : nil
                    socket.write(AddressedEnvelope(remoteAddress: remote, data: batch, metadata: metadata), promise: nil)
                    counters.sendBatches += 1
                }
                written += count
                counters.packetsSent += count
                if count < 64 { break }
            }
            if written > 0 { socket.flush() }
            onFlushed?()
            if written >= Self.packetsPerTurn { scheduleFlush() }
            armTimer()
        } catch {
            finish(error)
        }
    }

    private func armTimer() {
        let expiry = connection.expiry
        guard expiry != .max, !closed else { return }
        // A wake-up at or before the deadline is already on its way.
        if timers.contains(where: { $0.deadline <= expiry }) { return }
        if timers.count >= 4, let latest = timers.indices.max(by: { timers[$0].deadline < timers[$1].deadline }) {
            // Deadlines keep moving earlier: drop the latest wake-up rather than pile them up.
            timers.remove(at: latest).task.cancel()
        }
        let now = cngtcp2_timestamp()
        let delay = expiry > now ? Int64(expiry - now) : 0
        let task = socket.eventLoop.assumeIsolated().scheduleTask(in: .nanoseconds(delay)) { [self] in
            timers.removeAll { $0.deadline == expiry }
            guard !closed else { return }
            if connection.expiry <= cngtcp2_timestamp() {
                counters.timerExpiries += 1
                do throws(QUICError) {
                    try connection.handleExpiry(now: cngtcp2_timestamp())
                    flush()
                } catch {
                    finish(error)
                    return
                }
            }
            armTimer()
        }
        timers.append((expiry, task))
    }

    /// Moves the connection to `newSocket` (same event loop): immediate migration, validated
    /// by the server, then the first packets leave from the new address.
    func migrate(to newSocket: any Channel) throws(QUICError) {
        guard !closed else { throw .closed(reason: "the connection is closed") }
        guard let local = newSocket.localAddress else { throw .closed(reason: "the new socket is not bound") }
        try connection.migrate(to: local, remote: remote, now: cngtcp2_timestamp())
        socket = newSocket
        flush()
    }

    /// Closes with an application error code and reason (sent in CONNECTION_CLOSE).
    func close(code: UInt64 = 0, reason: String = "") {
        guard !closed else { return }
        if receiving {
            // Inside ngtcp2's read: close once it has returned.
            return eventLoop.assumeIsolated().execute { [self] in close(code: code, reason: reason) }
        }
        if let packet = connection.close(applicationError: code, reason: reason, now: cngtcp2_timestamp()) {
            socket.writeAndFlush(AddressedEnvelope(remoteAddress: remote, data: packet), promise: nil)
        }
        finish(nil)
    }

    /// Ends the connection without a packet (the socket is going away).
    func abandon() {
        finish(.closed(reason: "abandoned"))
    }

    private func finish(_ error: QUICError?) {
        guard !closed else { return }
        if let error, let packet = connection.close(after: error, now: cngtcp2_timestamp()) {
            socket.writeAndFlush(AddressedEnvelope(remoteAddress: remote, data: packet), promise: nil)
        }
        closed = true
        for (_, task) in timers { task.cancel() }
        timers.removeAll()
        onClosed?(error)
        onClosed = nil
        onFlushed = nil
        onReadBurstEnded = nil
        attachment = nil
    }
}
