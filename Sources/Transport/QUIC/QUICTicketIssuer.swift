import CNGTCP2
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The server side of session resumption and 0-RTT: the key that seals the session tickets the
/// server hands out (one per endpoint, so tickets do not outlive the process), and GnuTLS's
/// anti-replay check, which accepts each ClientHello's early data once within its window
/// (RFC 8446 §8). A replayed first flight is then answered without its 0-RTT data.
final class QUICTicketIssuer: @unchecked Sendable {
    private var key = gnutls_datum_t()
    private let antiReplay: gnutls_anti_replay_t
    private let seen: QUICReplayRecord

    /// - Parameters:
    ///   - replayWindow: how far a ticket's claimed age may be off (GnuTLS's window; early
    ///     data outside it is refused).
    ///   - maxRemembered: ClientHellos remembered within the window; beyond, early data is
    ///     refused (the handshake goes on in one round trip) until older ones expire.
    ///   - replayProtection: false accepts every first flight's early data (tests only).
    init(replayWindow: Duration = .seconds(10), maxRemembered: Int = 100_000, replayProtection: Bool = true) throws(QUICError) {
        try checkGnuTLS(gnutls_session_ticket_key_generate(&key), "gnutls_session_ticket_key_generate")
        var antiReplay: gnutls_anti_replay_t?
        let created = gnutls_anti_replay_init(&antiReplay)
        guard created >= 0, let antiReplay else {
            cgnutls_free_datum(&key)
            throw QUICError.gnutls("gnutls_anti_replay_init", created)
        }
        self.antiReplay = antiReplay
        seen = QUICReplayRecord(capacity: maxRemembered, refusesReplays: replayProtection)
        gnutls_anti_replay_set_window(antiReplay, UInt32(replayWindow.nanoseconds / 1_000_000))
        gnutls_anti_replay_set_ptr(antiReplay, Unmanaged.passUnretained(seen).toOpaque())
        gnutls_anti_replay_set_add_function(antiReplay) { pointer, expires, key, _ in
            guard let pointer, let key, let data = key.pointee.data else { return GNUTLS_E_INTERNAL_ERROR }
            let record = Unmanaged<QUICReplayRecord>.fromOpaque(pointer).takeUnretainedValue()
            let bytes = Array(UnsafeBufferPointer(start: data, count: Int(key.pointee.size)))
            return record.insert(bytes, expires: expires) ? 0 : GNUTLS_E_DB_ENTRY_EXISTS
        }
    }

    deinit {
        gnutls_anti_replay_deinit(antiReplay)
        cgnutls_free_datum(&key)
    }

    /// ClientHellos with early data accepted so far and still remembered (tests).
    var rememberedCount: Int { seen.count }

    /// Lets `session` (a server session) issue tickets sealed with this key and accept early
    /// data from them: QUIC requires the ticket's early-data limit to be 0xffffffff (RFC 9001
    /// §4.6.1); QUIC flow control, not TLS, bounds the 0-RTT bytes.
    func enable(on session: gnutls_session_t) throws(QUICError) {
        try checkGnuTLS(gnutls_session_ticket_enable_server(session, &key), "gnutls_session_ticket_enable_server")
        gnutls_anti_replay_enable(session, antiReplay)
        try checkGnuTLS(gnutls_record_set_max_early_data_size(session, 0xffff_ffff), "gnutls_record_set_max_early_data_size")
    }
}

/// The anti-replay record: keys GnuTLS derived from ClientHellos whose early data it accepted,
/// each until it expires; bounded, and full means "refuse" rather than "forget".
final class QUICReplayRecord: Sendable {
    private let entries = Mutex<[[UInt8]: time_t]>([:])
    let capacity: Int
    private let refusesReplays: Bool

    init(capacity: Int, refusesReplays: Bool = true) {
        self.capacity = capacity
        self.refusesReplays = refusesReplays
    }

    var count: Int { entries.withLock { $0.count } }

    /// Records `key` until `expires`; false if it is already there (a replay) or the record is
    /// full of unexpired keys.
    func insert(_ key: [UInt8], expires: time_t) -> Bool {
        guard refusesReplays else { return true }
        return entries.withLock { entries in
            let now = time(nil)
            if let existing = entries[key], existing >= now { return false }
            if entries.count >= capacity {
                entries = entries.filter { $0.value >= now }
                guard entries.count < capacity else { return false }
            }
            entries[key] = expires
            return true
        }
    }
}
