import CNGTCP2

/// A snapshot of one QUIC connection: ngtcp2's recovery and congestion state, and what the
/// connection's driver did on the socket.
public struct QUICConnectionStatistics: Sendable, CustomStringConvertible {
    /// Smoothed and minimum round-trip time.
    public var smoothedRTT: Duration
    public var minimumRTT: Duration
    /// Congestion window and bytes in flight.
    public var congestionWindow: UInt64
    public var bytesInFlight: UInt64
    /// Pacing rate, bytes per second (0 before the first RTT sample).
    public var pacingRate: Double
    /// Packets written, and the `sendmsg` batches they went out in (fewer with GSO).
    public var packetsSent: Int
    public var sendBatches: Int
    /// Datagrams received (after splitting coalesced GRO reads).
    public var datagramsReceived: Int
    /// Datagrams received with an ECN mark (ECT(0), ECT(1) or CE): the peer marks its packets
    /// once ECN validation succeeded on the path.
    public var ecnMarkedDatagramsReceived: Int
    /// Timer expiries handled (loss detection, ACK delay, pacing).
    public var timerExpiries: Int
    /// Packet-protection key generations derived after the handshake (key updates).
    public var keyUpdates: Int
    /// Whether the handshake resumed an earlier TLS session from its ticket.
    public var sessionResumed: Bool
    /// What became of 0-RTT data.
    public var earlyData: QUICEarlyData

    public var description: String {
        "srtt \(smoothedRTT) min \(minimumRTT) cwnd \(congestionWindow) inflight \(bytesInFlight) pacing \(Int(pacingRate / 1e6)) MB/s "
            + "sent \(packetsSent) packets in \(sendBatches) batches, received \(datagramsReceived) (\(ecnMarkedDatagramsReceived) ECN-marked), timers \(timerExpiries), key updates \(keyUpdates), resumed \(sessionResumed), 0-RTT \(earlyData)"
    }
}

extension QUICConnection {
    /// ngtcp2's view of the path.
    func statistics(counters: QUICConnectionDriver.Counters) -> QUICConnectionStatistics {
        var stat = ngtcp2_conn_stat()
        cngtcp2_conn_get_conn_stat(conn, &stat)
        return QUICConnectionStatistics(
            smoothedRTT: .nanoseconds(Int64(stat.smoothed_rtt)), minimumRTT: .nanoseconds(Int64(min(stat.min_rtt, UInt64(Int64.max)))),
            congestionWindow: stat.cwnd, bytesInFlight: stat.bytes_in_flight, pacingRate: stat.pacing_rate * 1e9,
            packetsSent: counters.packetsSent, sendBatches: counters.sendBatches, datagramsReceived: counters.datagramsReceived,
            ecnMarkedDatagramsReceived: counters.ecnMarkedDatagramsReceived, timerExpiries: counters.timerExpiries, keyUpdates: keyUpdates,
            sessionResumed: isHandshakeCompleted && tls.isResumed, earlyData: earlyData)
    }
}

/// What became of 0-RTT data on a connection.
public enum QUICEarlyData: Sendable, Equatable {
    /// None was sent (no ticket) or, on the server, none arrived.
    case none
    /// Client: data went out in 0-RTT; the handshake has not said yet whether it was accepted.
    case attempted
    /// The server accepted the 0-RTT data.
    case accepted
    /// The server refused it; it was sent again once the handshake completed.
    case rejected
}
