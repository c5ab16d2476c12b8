import CNGTCP2
import NIOCore

/// One QUIC connection: an `ngtcp2_conn` and its GnuTLS session, owned together and used from
/// one thread (the endpoint's event loop). Datagrams go in through ``receive(_:from:now:)``;
/// packets come out of ``writePackets(now:maxPackets:emit:)``; stream data handed to
/// ``send(_:on:fin:)`` is retained as `ByteBuffer`s until the peer acknowledges it (ngtcp2 reads
/// it in place, never copies it into a buffer of ours).
///
/// C callbacks reach this object through `Unmanaged` trampolines: ngtcp2's `user_data` and the
/// crypto layer's `ngtcp2_crypto_conn_ref` point at it, unretained, and both die with it.
final class QUICConnection {
    enum Role { case client, server }

    /// Settings of a connection that are not TLS.
    struct Options {
        /// Largest UDP payload written (packets are at most this long). Default 1452.
        var maxUDPPayloadSize = 1452
        /// Idle timeout. Default 60 s.
        var idleTimeout: Duration = .seconds(60)
        /// Connection-level flow-control window. Default 16 MiB.
        var maxData: UInt64 = 16 << 20
        /// Per-stream flow-control window. Default 4 MiB.
        var maxStreamData: UInt64 = 4 << 20
        /// Unidirectional streams the peer may open. Default 16.
        var maxStreamsUni: UInt64 = 16
        /// Bidirectional streams the peer may open. Default 16.
        var maxStreamsBidi: UInt64 = 16
        /// Time the handshake may take before the connection gives up. Default 10 s.
        var handshakeTimeout: Duration = .seconds(10)
        /// Ack-eliciting packets received before an ACK is sent at once (otherwise after the
        /// read burst, or the ACK delay). Default 2 (RFC 9000's recommendation).
        var ackThreshold = 2
        /// ngtcp2's internal logging to standard error (debugging only; the environment
        /// variable `QUIC_DEBUG_LOG` turns it on for every connection of the process).
        var debugLog = false

        /// The defaults.
        init() {}

        /// Settings for a channel connection: `channelStreams` unidirectional streams (one per
        /// lane), no bidirectional ones, `streamWindow` per stream and room for every stream's
        /// window, and more, at the connection level.
        init(channelStreams: Int, streamWindow: Int, idleTimeout: Duration, handshakeTimeout: Duration) {
            self.handshakeTimeout = handshakeTimeout
            maxStreamsUni = UInt64(channelStreams)
            maxStreamsBidi = 0
            maxStreamData = UInt64(streamWindow)
            // The connection window is handed back as data arrives (the stream windows bound
            // what is buffered), so it only caps the bytes in flight.
            maxData = max(16 << 20, UInt64(streamWindow) * UInt64(channelStreams))
            self.idleTimeout = idleTimeout
        }
    }

    let role: Role
    let tls: QUICTLSSession
    let path: QUICPath
    private(set) var conn: OpaquePointer!
    private let connRef: UnsafeMutablePointer<ngtcp2_crypto_conn_ref>
    private let options: Options
    private var streams: [Int64: OutgoingStream] = [:]
    private var streamOrder: [Int64] = []
    private var nextStreamToServe = 0
    /// An error raised inside a callback, reported by the call that triggered it.
    private var callbackFailure: QUICError?
    /// What ngtcp2 says about the packet it just wrote (its ECN codepoint).
    private var packetInfo = ngtcp2_pkt_info()
    /// What the socket said about the datagram being read (its ECN codepoint).
    private var receivedPacketInfo = ngtcp2_pkt_info()

    /// The handshake completed (TLS done, 1-RTT keys installed).
    var onHandshakeCompleted: (() -> Void)?
    /// Stream data arrived in order: stream id, bytes (valid during the call), whether it ends the stream.
    var onStreamData: ((Int64, UnsafeRawBufferPointer, Bool) -> Void)?
    /// Whether the flow-control window of a stream the peer sends on is handed back by
    /// ``extendStreamWindow(_:by:)`` (true) or as soon as data arrives (false, the default).
    var holdsStreamWindow: (Int64) -> Bool = { _ in false }
    /// Client: a session ticket arrived (store it to resume the next connection).
    var onSessionTicket: ((QUICResumptionTicket) -> Void)?
    /// Client: the server sent an address token in NEW_TOKEN (store it for the next connection).
    var onAddressToken: (([UInt8]) -> Void)?
    /// Client: the server refused the 0-RTT data. ngtcp2 has discarded the streams opened
    /// before the handshake; their data must be sent again on new streams. Called before
    /// ``onHandshakeCompleted``.
    var onEarlyDataRejected: (() -> Void)?
    /// Server: makes the NEW_TOKEN token sent once the handshake completes (nil: none).
    var addressTokenIssuer: (() -> [UInt8]?)?
    /// Server: the first 0-RTT stream data arrived.
    var onEarlyData: (() -> Void)?

    private(set) var earlyData = QUICEarlyData.none
    /// Server: stream bytes received in 0-RTT packets.
    private(set) var earlyBytesReceived = 0

    /// This side issued a new connection ID (the server registers it for demultiplexing).
    var onNewConnectionID: ((QUICConnectionID) -> Void)?
    /// A connection ID of this side was retired.
    var onRetiredConnectionID: ((QUICConnectionID) -> Void)?

    private init(role: Role, tls: QUICTLSSession, path: QUICPath, options: Options) {
        self.role = role
        self.tls = tls
        self.path = path
        self.options = options
        connRef = .allocate(capacity: 1)
        connRef.initialize(to: ngtcp2_crypto_conn_ref())
    }

    deinit {
        if let conn { ngtcp2_conn_del(conn) }
        connRef.deallocate()
    }

    /// Opens a client connection to `remote`. Nothing is sent until ``writePackets(now:maxPackets:emit:)``.
    /// With a `ticket` the handshake resumes that session, and streams opened before the
    /// handshake completes carry their data in 0-RTT packets; an `addressToken` (from an
    /// earlier connection's NEW_TOKEN) goes in the Initial packet so the server need not Retry.
    static func client(
        local: SocketAddress, remote: SocketAddress, credentials: QUICCredentials, alpn: String, serverName: String,
        options: Options = Options(), ticket: QUICResumptionTicket? = nil, addressToken: [UInt8]? = nil
    ) throws(QUICError) -> QUICConnection {
        let tls = try QUICTLSSession(isServer: false, credentials: credentials, alpn: alpn, serverName: serverName, resumingWith: ticket?.sessionData)
        let connection = QUICConnection(role: .client, tls: tls, path: QUICPath(local: local, remote: remote), options: options)
        var dcid = QUICConnectionID.random(length: 18).ngtcp2
        var scid = QUICConnectionID.random(length: 18).ngtcp2
        var settings = connection.makeSettings()
        var params = connection.makeTransportParameters()
        var callbacks = makeCallbacks(role: .client)
        var conn: OpaquePointer?
        // ngtcp2 copies the token.
        let token = addressToken ?? []
        let result = token.withUnsafeBufferPointer { token in
            if !token.isEmpty { settings.token = ngtcp2_vec(base: UnsafeMutablePointer(mutating: token.baseAddress), len: token.count) }
            return cngtcp2_conn_client_new(
                &conn, &dcid, &scid, connection.path.path, NGTCP2_PROTO_VER_V1, &callbacks, &settings, &params,
                Unmanaged.passUnretained(connection).toOpaque())
        }
        guard result == 0, let conn else { throw QUICError.ngtcp2("ngtcp2_conn_client_new", result) }
        connection.attach(conn)
        gnutls_handshake_set_hook_function(
            tls.handle, UInt32(GNUTLS_HANDSHAKE_NEW_SESSION_TICKET.rawValue), GNUTLS_HOOK_POST
        ) { session, _, _, _, _ in
            guard let session, let reference = gnutls_session_get_ptr(session)?.assumingMemoryBound(to: ngtcp2_crypto_conn_ref.self) else { return 0 }
            QUICConnection.connection(reference.pointee.user_data).didReceiveSessionTicket()
            return 0
        }
        if let ticket {
            var remembered = ticket.parameters.ngtcp2
            cngtcp2_conn_set_early_remote_transport_params(conn, &remembered)
            connection.earlyData = .attempted
        }
        return connection
    }

    /// Accepts a client's first Initial packet, whose decoded header is `header`. After a Retry,
    /// `originalDestinationID` is the ID the client first used (from the validated token);
    /// `addressValidated` says the header's token is a valid NEW_TOKEN token (the client's
    /// address is proven, so the anti-amplification limit does not apply). A `ticketIssuer`
    /// lets the connection issue session tickets and accept 0-RTT data.
    static func server(
        header: ngtcp2_pkt_hd, originalDestinationID: ngtcp2_cid? = nil, addressValidated: Bool = false, local: SocketAddress,
        remote: SocketAddress, credentials: QUICCredentials, alpn: String, options: Options = Options(), ticketIssuer: QUICTicketIssuer? = nil
    ) throws(QUICError) -> (QUICConnection, QUICConnectionID) {
        var header = header
        let tls = try QUICTLSSession(isServer: true, credentials: credentials, alpn: alpn, serverName: nil, ticketIssuer: ticketIssuer)
        let connection = QUICConnection(role: .server, tls: tls, path: QUICPath(local: local, remote: remote), options: options)
        let id = QUICConnectionID.random(length: 18)
        var scid = id.ngtcp2
        var settings = connection.makeSettings()
        var params = connection.makeTransportParameters()
        if let originalDestinationID {
            // Tells the client the Retry came from this server (RFC 9000 §7.3).
            params.original_dcid = originalDestinationID
            params.retry_scid = header.dcid
            params.retry_scid_present = 1
        } else {
            params.original_dcid = header.dcid
        }
        if addressValidated { settings.token = header.token }
        var callbacks = makeCallbacks(role: .server)
        var conn: OpaquePointer?
        let result = cngtcp2_conn_server_new(
            &conn, &header.scid, &scid, connection.path.path, header.version, &callbacks, &settings, &params,
            Unmanaged.passUnretained(connection).toOpaque())
        guard result == 0, let conn else { throw QUICError.ngtcp2("ngtcp2_conn_server_new", result) }
        connection.attach(conn)
        return (connection, id)
    }

    private func attach(_ conn: OpaquePointer) {
        self.conn = conn
        connRef.pointee.user_data = Unmanaged.passUnretained(self).toOpaque()
        connRef.pointee.get_conn = { reference in
            Unmanaged<QUICConnection>.fromOpaque(reference!.pointee.user_data).takeUnretainedValue().conn
        }
        gnutls_session_set_ptr(tls.handle, connRef)
        ngtcp2_conn_set_tls_native_handle(conn, UnsafeMutableRawPointer(tls.handle))
    }

    private func makeSettings() -> ngtcp2_settings {
        var settings = ngtcp2_settings()
        cngtcp2_settings_default(&settings)
        settings.initial_ts = cngtcp2_timestamp()
        settings.max_tx_udp_payload_size = options.maxUDPPayloadSize
        settings.max_window = options.maxData * 2
        settings.max_stream_window = options.maxStreamData * 2
        settings.ack_thresh = options.ackThreshold
        settings.handshake_timeout = UInt64(options.handshakeTimeout.nanoseconds)
        if options.debugLog || getenv("QUIC_DEBUG_LOG") != nil { cngtcp2_settings_log_to_stderr(&settings) }
        return settings
    }

    private func makeTransportParameters() -> ngtcp2_transport_params {
        var params = ngtcp2_transport_params()
        cngtcp2_transport_params_default(&params)
        params.initial_max_data = options.maxData
        params.initial_max_stream_data_bidi_local = options.maxStreamData
        params.initial_max_stream_data_bidi_remote = options.maxStreamData
        params.initial_max_stream_data_uni = options.maxStreamData
        params.initial_max_streams_uni = options.maxStreamsUni
        params.initial_max_streams_bidi = options.maxStreamsBidi
        params.max_idle_timeout = UInt64(options.idleTimeout.nanoseconds)
        params.active_connection_id_limit = 8
        return params
    }

    // MARK: state

    var isHandshakeCompleted: Bool { ngtcp2_conn_get_handshake_completed(conn) != 0 }
    var isClosingOrDraining: Bool { ngtcp2_conn_is_in_closing_period(conn) != 0 || ngtcp2_conn_is_in_draining_period(conn) != 0 }
    /// When ``handleExpiry(now:)`` must next run (ngtcp2 timestamp, nanoseconds).
    var expiry: UInt64 { ngtcp2_conn_get_expiry(conn) }

    /// The connection IDs this side issued that are in use (the peer addresses packets to them).
    var sourceConnectionIDs: [QUICConnectionID] {
        let count = ngtcp2_conn_get_num_scid(conn)
        var ids = [ngtcp2_cid](repeating: ngtcp2_cid(), count: count)
        _ = ids.withUnsafeMutableBufferPointer { ngtcp2_conn_get_scid(conn, $0.baseAddress) }
        return ids.map { id in withUnsafePointer(to: id) { QUICConnectionID($0) } }
    }

    /// Congestion and timer state, for diagnostics.
    var debugDescription: String {
        let now = cngtcp2_timestamp()
        let expiry = self.expiry
        let streamsUnsent = streams.map { "\($0.key):\($0.value.unsentBytes)/\($0.value.retainedBytes)" }.joined(separator: " ")
        return "cwndLeft=\(ngtcp2_conn_get_cwnd_left(conn)) expiryIn=\(expiry == .max ? -1 : Int64(expiry) - Int64(now)) streams[\(streamsUnsent)]"
    }

    // MARK: input

    /// Processes one received datagram, which arrived with the ECN codepoint `ecn`
    /// (`NGTCP2_ECN_*`; not-ECT when the socket does not report it).
    func receive(_ datagram: ByteBuffer, from remote: SocketAddress, ecn: UInt32 = UInt32(NGTCP2_ECN_NOT_ECT), now: UInt64) throws(QUICError) {
        path.set(remote: remote)
        receivedPacketInfo.ecn = ecn
        let result = datagram.withUnsafeReadableBytes { bytes in
            cngtcp2_conn_read_pkt(conn, path.path, &receivedPacketInfo, bytes.baseAddress?.assumingMemoryBound(to: UInt8.self), bytes.count, now)
        }
        if let failure = callbackFailure { callbackFailure = nil; throw failure }
        guard result == 0 else { throw QUICError.ngtcp2("ngtcp2_conn_read_pkt", result) }
    }

    /// Packet-protection key generations derived after the handshake. ngtcp2 derives one
    /// generation ahead once the handshake is confirmed, then one per key update (RFC 9001 §6)
    /// by either side.
    fileprivate(set) var keyGenerationsDerived = 0

    /// Key updates so far, by either side.
    var keyUpdates: Int { max(0, keyGenerationsDerived - 1) }

    /// Starts a key update: this side's next packets use the next key generation. Fails while
    /// the previous update is unconfirmed or before the handshake is confirmed.
    func initiateKeyUpdate(now: UInt64) throws(QUICError) {
        let result = ngtcp2_conn_initiate_key_update(conn, now)
        guard result == 0 else { throw QUICError.ngtcp2("ngtcp2_conn_initiate_key_update", result) }
    }

    /// Switches to the local address `local` at once (client only; needs a spare connection
    /// ID from the server, which it issues after the handshake).
    func migrate(to local: SocketAddress, remote: SocketAddress, now: UInt64) throws(QUICError) {
        let newPath = QUICPath(local: local, remote: remote)
        let result = ngtcp2_conn_initiate_immediate_migration(conn, newPath.path, now)
        guard result == 0 else { throw QUICError.ngtcp2("ngtcp2_conn_initiate_immediate_migration", result) }
        path.set(local: local)
    }

    /// Runs ngtcp2's timers (loss detection, idle timeout, ACK delay).
    func handleExpiry(now: UInt64) throws(QUICError) {
        let result = ngtcp2_conn_handle_expiry(conn, now)
        guard result == 0 else { throw QUICError.ngtcp2("ngtcp2_conn_handle_expiry", result) }
    }

    // MARK: streams

    /// Opens a unidirectional stream of this side.
    func openUniStream() throws(QUICError) -> Int64 {
        var id: Int64 = -1
        let result = ngtcp2_conn_open_uni_stream(conn, &id, nil)
        guard result == 0 else { throw QUICError.ngtcp2("ngtcp2_conn_open_uni_stream", result) }
        return id
    }

    /// Opens a bidirectional stream of this side.
    func openBidiStream() throws(QUICError) -> Int64 {
        var id: Int64 = -1
        let result = ngtcp2_conn_open_bidi_stream(conn, &id, nil)
        guard result == 0 else { throw QUICError.ngtcp2("ngtcp2_conn_open_bidi_stream", result) }
        return id
    }

    /// Queues `data` on `stream`; it is retained until acknowledged.
    func send(_ data: ByteBuffer, on stream: Int64, fin: Bool = false) {
        if streams[stream] == nil {
            streams[stream] = OutgoingStream()
            streamOrder.append(stream)
        }
        streams[stream]!.append(data, fin: fin)
    }

    /// Bytes queued on `stream` and not yet acknowledged.
    func unacknowledgedBytes(on stream: Int64) -> Int { streams[stream]?.retainedBytes ?? 0 }

    /// Bytes queued on `stream` that ngtcp2 has not taken yet (held back by flow control,
    /// congestion control or pacing).
    func unsentBytes(on stream: Int64) -> Int { streams[stream]?.unsentBytes ?? 0 }

    /// Lets the peer send `bytes` more on `stream` (a stream whose window this side holds).
    func extendStreamWindow(_ stream: Int64, by bytes: Int) {
        guard bytes > 0 else { return }
        ngtcp2_conn_extend_max_stream_offset(conn, stream, UInt64(bytes))
    }

    /// The CONNECTION_CLOSE the peer sent, if it sent one: whether it was an application
    /// close, its code and its reason phrase.
    var peerCloseError: (isApplication: Bool, code: UInt64, reason: String)? {
        var error = ngtcp2_connection_close_error()
        ngtcp2_conn_get_connection_close_error(conn, &error)
        let isApplication = error.type == NGTCP2_CONNECTION_CLOSE_ERROR_CODE_TYPE_APPLICATION
        guard isApplication || error.type == NGTCP2_CONNECTION_CLOSE_ERROR_CODE_TYPE_TRANSPORT else { return nil }
        let reason = error.reason.map { String(decoding: UnsafeBufferPointer(start: $0, count: error.reasonlen), as: UTF8.self) } ?? ""
        return (isApplication, error.error_code, reason)
    }

    // MARK: output

    /// Writes up to `maxPackets` packets (stream data, ACKs, handshake, retransmissions) and
    /// hands them to `emit` in batches: packets written back to back into one buffer, all of
    /// `segmentSize` bytes but the last, which may be shorter, and all with the same ECN
    /// codepoint `ecn` (`NGTCP2_ECN_*`), so that one `sendmsg` with `UDP_SEGMENT` (GSO) sends
    /// the batch. With `maxSegments` 1 every packet is a batch of its own. Returns how many
    /// packets it wrote.
    @discardableResult
    func writePackets(
        now: UInt64, maxPackets: Int = 64, maxSegments: Int = 1, allocator: ByteBufferAllocator = ByteBufferAllocator(),
        emit: (_ batch: ByteBuffer, _ segmentSize: Int, _ ecn: UInt32) -> Void
    ) throws(QUICError) -> Int {
        let packetSize = options.maxUDPPayloadSize
        var written = 0
        var blocked = Set<Int64>()
        var batch = allocator.buffer(capacity: packetSize * max(1, min(maxSegments, maxPackets)))
        var segmentSize = 0
        var segments = 0
        var batchECN = UInt32(NGTCP2_ECN_NOT_ECT)
        func flushBatch() {
            guard segments > 0 else { return }
            emit(batch, segmentSize, batchECN)
            batch = allocator.buffer(capacity: packetSize * max(1, min(maxSegments, maxPackets - written)))
            segments = 0
        }
        while written < maxPackets {
            if batch.writableBytes < packetSize { flushBatch() }
            let stream = nextSendableStream(excluding: blocked)
            var consumed: Int = -1
            let result: Int
            if let stream {
                var flags = UInt32(NGTCP2_WRITE_STREAM_FLAG_MORE)
                if streams[stream]!.finPending { flags |= UInt32(NGTCP2_WRITE_STREAM_FLAG_FIN) }
                let vectors = streams[stream]!.unsentVectors()
                result = vectors.withUnsafeBufferPointer { vectors in
                    batch.withUnsafeMutableWritableBytes { destination in
                        cngtcp2_conn_writev_stream(
                            conn, path.path, &packetInfo, destination.baseAddress?.assumingMemoryBound(to: UInt8.self),
                            packetSize, &consumed, flags, stream, vectors.baseAddress, vectors.count, now)
                    }
                }
                if consumed >= 0 { streams[stream]!.didSend(consumed) }
            } else {
                result = batch.withUnsafeMutableWritableBytes { destination in
                    cngtcp2_conn_writev_stream(
                        conn, path.path, &packetInfo, destination.baseAddress?.assumingMemoryBound(to: UInt8.self),
                        packetSize, nil, 0, -1, nil, 0, now)
                }
            }
            if let failure = callbackFailure { callbackFailure = nil; throw failure }
            if result < 0 {
                switch Int32(result) {
                case NGTCP2_ERR_WRITE_MORE:
                    continue
                case NGTCP2_ERR_STREAM_DATA_BLOCKED, NGTCP2_ERR_STREAM_SHUT_WR, NGTCP2_ERR_STREAM_NOT_FOUND:
                    if let stream { blocked.insert(stream) }
                    continue
                default:
                    throw QUICError.ngtcp2("ngtcp2_conn_writev_stream", Int32(result))
                }
            }
            if result == 0 { break }
            written += 1
            if segments > 0, result > segmentSize || packetInfo.ecn != batchECN {
                // Longer than the batch's segments, or marked differently: it starts a batch of its own.
                var packet = allocator.buffer(capacity: packetSize * max(1, min(maxSegments, maxPackets - written + 1)))
                _ = batch.withUnsafeMutableWritableBytes { source in packet.writeBytes(UnsafeRawBufferPointer(rebasing: source[0..<result])) }
                emit(batch, segmentSize, batchECN)
                batch = packet
                segments = 1
                segmentSize = result
                batchECN = packetInfo.ecn
                if result < segmentSize || segments >= maxSegments { flushBatch() }
                continue
            }
            batch.moveWriterIndex(forwardBy: result)
            if segments == 0 {
                segmentSize = result
                batchECN = packetInfo.ecn
            }
            segments += 1
            // A short packet ends a batch, as does the segment limit.
            if result < segmentSize || segments >= maxSegments { flushBatch() }
        }
        flushBatch()
        if hasRTTSample || measuredRTT() {
            ngtcp2_conn_update_pkt_tx_time(conn, now)
        }
        return written
    }

    /// Whether ngtcp2 has measured the round-trip time yet. Until it has, ngtcp2 0.12 paces
    /// against its initial estimate (333 ms), which would hold the client's second flight (its
    /// Finished, the HELLO) some 50 ms on any network, so the pacing clock starts with the
    /// first sample; the bytes sent before it count toward the first interval.
    private var hasRTTSample = false

    private func measuredRTT() -> Bool {
        var stat = ngtcp2_conn_stat()
        cngtcp2_conn_get_conn_stat(conn, &stat)
        hasRTTSample = stat.first_rtt_sample_ts != .max
        return hasRTTSample
    }

    private func nextSendableStream(excluding blocked: Set<Int64>) -> Int64? {
        guard !streamOrder.isEmpty else { return nil }
        for offset in 0..<streamOrder.count {
            let stream = streamOrder[(nextStreamToServe + offset) % streamOrder.count]
            if !blocked.contains(stream), streams[stream]!.hasUnsent {
                nextStreamToServe = (nextStreamToServe + offset + 1) % streamOrder.count
                return stream
            }
        }
        return nil
    }

    /// A CONNECTION_CLOSE packet carrying an application error, and the connection enters its
    /// closing period.
    func close(applicationError code: UInt64, reason: String, now: UInt64) -> ByteBuffer? {
        var error = ngtcp2_connection_close_error()
        let reasonBytes = Array(reason.utf8.prefix(256))
        reasonBytes.withUnsafeBufferPointer { ngtcp2_connection_close_error_set_application_error(&error, code, $0.baseAddress, $0.count) }
        return writeClose(&error, now: now)
    }

    /// The CONNECTION_CLOSE packet that reports `failure` (a failed `ngtcp2_conn_read_pkt` or
    /// expiry) to the peer: a TLS alert for a handshake failure, else the transport error; nil
    /// when the connection is already closing or draining, or the error needs no packet.
    func close(after failure: QUICError, now: UInt64) -> ByteBuffer? {
        guard case .ngtcp2(_, let code, _) = failure, !isClosingOrDraining,
              code != NGTCP2_ERR_DRAINING, code != NGTCP2_ERR_CLOSING, code != NGTCP2_ERR_IDLE_CLOSE, code != NGTCP2_ERR_DROP_CONN
        else { return nil }
        var error = ngtcp2_connection_close_error()
        if code == NGTCP2_ERR_CRYPTO {
            ngtcp2_connection_close_error_set_transport_error_tls_alert(&error, ngtcp2_conn_get_tls_alert(conn), nil, 0)
        } else {
            ngtcp2_connection_close_error_set_transport_error_liberr(&error, code, nil, 0)
        }
        return writeClose(&error, now: now)
    }

    private func writeClose(_ error: inout ngtcp2_connection_close_error, now: UInt64) -> ByteBuffer? {
        var packet = ByteBuffer()
        packet.reserveCapacity(options.maxUDPPayloadSize)
        let result = packet.withUnsafeMutableWritableBytes { destination in
            cngtcp2_conn_write_connection_close(
                conn, path.path, &packetInfo, destination.baseAddress?.assumingMemoryBound(to: UInt8.self),
                options.maxUDPPayloadSize, &error, now)
        }
        guard result > 0 else { return nil }
        packet.moveWriterIndex(forwardBy: result)
        return packet
    }

    // MARK: callbacks (called by ngtcp2 during read and write)

    fileprivate func didReceive(stream: Int64, bytes: UnsafeRawBufferPointer, fin: Bool, early: Bool) {
        if early {
            if earlyBytesReceived == 0 {
                earlyData = .accepted
                onEarlyData?()
            }
            earlyBytesReceived += bytes.count
        }
        onStreamData?(stream, bytes, fin)
        // Stream windows bound what the peer may have outstanding; the connection window only
        // sums them, so it is handed back at once.
        if !holdsStreamWindow(stream) { ngtcp2_conn_extend_max_stream_offset(conn, stream, UInt64(bytes.count)) }
        ngtcp2_conn_extend_max_offset(conn, UInt64(bytes.count))
    }

    fileprivate func didAcknowledge(stream: Int64, upTo offset: UInt64) {
        streams[stream]?.acknowledge(upTo: offset)
    }

    fileprivate func didIssue(_ id: QUICConnectionID) { onNewConnectionID?(id) }
    fileprivate func didRetire(_ id: QUICConnectionID) { onRetiredConnectionID?(id) }
    fileprivate func didCompleteHandshake() throws(QUICError) {
        switch role {
        case .client:
            if earlyData == .attempted {
                if tls.earlyDataAccepted {
                    earlyData = .accepted
                } else {
                    earlyData = .rejected
                    // ngtcp2 forgets the 0-RTT streams and their ids: so does this side.
                    let result = ngtcp2_conn_early_data_rejected(conn)
                    guard result == 0 else { throw QUICError.ngtcp2("ngtcp2_conn_early_data_rejected", result) }
                    streams.removeAll()
                    streamOrder.removeAll()
                    nextStreamToServe = 0
                    onEarlyDataRejected?()
                }
            }
        case .server:
            if let token = addressTokenIssuer?(), !token.isEmpty {
                let result = token.withUnsafeBufferPointer { ngtcp2_conn_submit_new_token(conn, $0.baseAddress, $0.count) }
                guard result == 0 else { throw QUICError.ngtcp2("ngtcp2_conn_submit_new_token", result) }
            }
        }
        onHandshakeCompleted?()
    }

    fileprivate func didReceiveSessionTicket() {
        guard let sessionData = tls.sessionData, let parameters = ngtcp2_conn_get_remote_transport_params(conn) else { return }
        onSessionTicket?(QUICResumptionTicket(sessionData: sessionData, parameters: QUICRememberedTransportParameters(parameters.pointee)))
    }

    fileprivate func didReceive(addressToken: UnsafeRawBufferPointer) {
        onAddressToken?(Array(addressToken))
    }

    fileprivate static func connection(_ userData: UnsafeMutableRawPointer?) -> QUICConnection {
        Unmanaged<QUICConnection>.fromOpaque(userData!).takeUnretainedValue()
    }

    private static func makeCallbacks(role: Role) -> ngtcp2_callbacks {
        var callbacks = ngtcp2_callbacks()
        if role == .client {
            callbacks.client_initial = ngtcp2_crypto_client_initial_cb
            callbacks.recv_retry = ngtcp2_crypto_recv_retry_cb
        } else {
            callbacks.recv_client_initial = ngtcp2_crypto_recv_client_initial_cb
        }
        callbacks.recv_crypto_data = ngtcp2_crypto_recv_crypto_data_cb
        callbacks.encrypt = ngtcp2_crypto_encrypt_cb
        callbacks.decrypt = ngtcp2_crypto_decrypt_cb
        callbacks.hp_mask = ngtcp2_crypto_hp_mask_cb
        callbacks.update_key = { conn, rxSecret, txSecret, rxContext, rxIV, txContext, txIV, currentRx, currentTx, length, userData in
            let result = ngtcp2_crypto_update_key_cb(conn, rxSecret, txSecret, rxContext, rxIV, txContext, txIV, currentRx, currentTx, length, userData)
            if result == 0 { QUICConnection.connection(userData).keyGenerationsDerived += 1 }
            return result
        }
        callbacks.delete_crypto_aead_ctx = ngtcp2_crypto_delete_crypto_aead_ctx_cb
        callbacks.delete_crypto_cipher_ctx = ngtcp2_crypto_delete_crypto_cipher_ctx_cb
        callbacks.get_path_challenge_data = ngtcp2_crypto_get_path_challenge_data_cb
        callbacks.version_negotiation = ngtcp2_crypto_version_negotiation_cb
        callbacks.rand = { destination, length, _ in
            _ = gnutls_rnd(GNUTLS_RND_RANDOM, destination, length)
        }
        callbacks.get_new_connection_id = { _, cid, token, length, userData in
            let id = QUICConnectionID.random(length: length)
            id.bytes.withUnsafeBufferPointer { ngtcp2_cid_init(cid, $0.baseAddress, $0.count) }
            guard gnutls_rnd(GNUTLS_RND_RANDOM, token, Int(NGTCP2_STATELESS_RESET_TOKENLEN)) == 0 else { return NGTCP2_ERR_CALLBACK_FAILURE }
            QUICConnection.connection(userData).didIssue(id)
            return 0
        }
        callbacks.remove_connection_id = { _, cid, userData in
            QUICConnection.connection(userData).didRetire(QUICConnectionID(cid!))
            return 0
        }
        callbacks.handshake_completed = { _, userData in
            let connection = QUICConnection.connection(userData)
            do throws(QUICError) {
                try connection.didCompleteHandshake()
                return 0
            } catch {
                connection.callbackFailure = error
                return NGTCP2_ERR_CALLBACK_FAILURE
            }
        }
        callbacks.recv_stream_data = { _, flags, stream, _, data, length, userData, _ in
            let fin = flags & UInt32(NGTCP2_STREAM_DATA_FLAG_FIN) != 0
            let early = flags & UInt32(NGTCP2_STREAM_DATA_FLAG_EARLY) != 0
            QUICConnection.connection(userData).didReceive(
                stream: stream, bytes: UnsafeRawBufferPointer(start: data, count: length), fin: fin, early: early)
            return 0
        }
        if role == .client {
            callbacks.recv_new_token = { _, token, userData in
                guard let token, token.pointee.len > 0 else { return 0 }
                QUICConnection.connection(userData).didReceive(addressToken: UnsafeRawBufferPointer(start: token.pointee.base, count: token.pointee.len))
                return 0
            }
        }
        callbacks.acked_stream_data_offset = { _, stream, offset, length, userData, _ in
            QUICConnection.connection(userData).didAcknowledge(stream: stream, upTo: offset + length)
            return 0
        }
        return callbacks
    }
}
