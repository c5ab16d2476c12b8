import CNGTCP2
import Synchronization

/// What a client keeps from one connection to open the next one faster: the TLS session ticket
/// (resumption and 0-RTT, RFC 9001 §4.6) with the server's transport parameters that 0-RTT
/// data must respect (RFC 9000 §7.4.1), and the server's NEW_TOKEN address token, which spares
/// the next connection the Retry round trip (§8.1.3).
struct QUICResumptionTicket: Sendable {
    /// The GnuTLS session data carrying the ticket (`gnutls_session_get_data2`).
    var sessionData: [UInt8]
    /// The server's transport parameters of the connection the ticket came from.
    var parameters: QUICRememberedTransportParameters
}

/// The transport parameters a client must remember with a ticket to send 0-RTT data: the
/// flow-control and stream limits (the fields `ngtcp2_conn_set_early_remote_transport_params`
/// needs).
struct QUICRememberedTransportParameters: Sendable, Equatable {
    var initialMaxData: UInt64
    var initialMaxStreamDataBidiLocal: UInt64
    var initialMaxStreamDataBidiRemote: UInt64
    var initialMaxStreamDataUni: UInt64
    var initialMaxStreamsBidi: UInt64
    var initialMaxStreamsUni: UInt64
    var activeConnectionIDLimit: UInt64
    var maxDatagramFrameSize: UInt64

    init(_ params: ngtcp2_transport_params) {
        initialMaxData = params.initial_max_data
        initialMaxStreamDataBidiLocal = params.initial_max_stream_data_bidi_local
        initialMaxStreamDataBidiRemote = params.initial_max_stream_data_bidi_remote
        initialMaxStreamDataUni = params.initial_max_stream_data_uni
        initialMaxStreamsBidi = params.initial_max_streams_bidi
        initialMaxStreamsUni = params.initial_max_streams_uni
        activeConnectionIDLimit = params.active_connection_id_limit
        maxDatagramFrameSize = params.max_datagram_frame_size
    }

    /// ngtcp2's form, the remaining fields at their defaults.
    var ngtcp2: ngtcp2_transport_params {
        var params = ngtcp2_transport_params()
        cngtcp2_transport_params_default(&params)
        params.initial_max_data = initialMaxData
        params.initial_max_stream_data_bidi_local = initialMaxStreamDataBidiLocal
        params.initial_max_stream_data_bidi_remote = initialMaxStreamDataBidiRemote
        params.initial_max_stream_data_uni = initialMaxStreamDataUni
        params.initial_max_streams_bidi = initialMaxStreamsBidi
        params.initial_max_streams_uni = initialMaxStreamsUni
        params.active_connection_id_limit = activeConnectionIDLimit
        params.max_datagram_frame_size = maxDatagramFrameSize
        return params
    }
}

/// A client's resumption state per server: the newest session ticket (used once, as TLS 1.3
/// advises, and replaced by the ticket the resumed connection receives) and the newest address
/// token (used until the server stops accepting it). Shared by the connections of one
/// ``QUICConnector``.
final class QUICSessionCache: Sendable {
    private struct Entry {
        var ticket: QUICResumptionTicket?
        var addressToken: [UInt8]?
    }

    private let entries = Mutex<[String: Entry]>([:])
    /// Servers remembered at most; beyond, storing for a new server evicts another. Default 64.
    let capacity: Int

    init(capacity: Int = 64) { self.capacity = capacity }

    /// Takes the ticket stored for `server` (a ticket is used once) and reads its address token.
    func take(for server: String) -> (ticket: QUICResumptionTicket?, addressToken: [UInt8]?) {
        entries.withLock { entries in
            let entry = entries[server]
            entries[server]?.ticket = nil
            return (entry?.ticket, entry?.addressToken)
        }
    }

    /// Stores the ticket a connection to `server` received.
    func store(_ ticket: QUICResumptionTicket, for server: String) {
        update(server) { $0.ticket = ticket }
    }

    /// Stores the address token a connection to `server` received in NEW_TOKEN.
    func store(addressToken: [UInt8], for server: String) {
        update(server) { $0.addressToken = addressToken }
    }

    /// Forgets everything about `server`.
    func forget(_ server: String) {
        _ = entries.withLock { $0.removeValue(forKey: server) }
    }

    private func update(_ server: String, _ change: (inout Entry) -> Void) {
        entries.withLock { entries in
            if entries[server] == nil, entries.count >= capacity, let evicted = entries.keys.first {
                entries[evicted] = nil
            }
            change(&entries[server, default: Entry()])
        }
    }
}
