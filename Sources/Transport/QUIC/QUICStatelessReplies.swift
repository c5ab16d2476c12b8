import CNGTCP2
import NIOCore

/// The packets a server sends without a connection, Retry (address validation, RFC 9000 §8.1.2)
/// and Version Negotiation (§6), and the address tokens it validates a client with: Retry
/// tokens, which bind the client's address and port and its original destination connection
/// ID, and NEW_TOKEN tokens for the client's next connections (§8.1.3), which bind its IP
/// address only. Both are sealed with a secret that lives as long as the endpoint, and expire.
struct QUICStatelessReplies {
    private let secret: [UInt8]
    /// How long a Retry token stays valid.
    let tokenLifetime: Duration
    /// How long a NEW_TOKEN token stays valid.
    let addressTokenLifetime: Duration

    init(tokenLifetime: Duration, addressTokenLifetime: Duration = .seconds(3600)) {
        self.tokenLifetime = tokenLifetime
        self.addressTokenLifetime = addressTokenLifetime
        secret = QUICConnectionID.random(length: 32).bytes
    }

    /// What the token of a client's Initial packet is.
    enum TokenKind {
        case none
        case retry
        case addressToken
        case unknown
    }

    static func kind(of header: ngtcp2_pkt_hd) -> TokenKind {
        guard header.token.len > 0, let first = header.token.base?.pointee else { return .none }
        switch first {
        case UInt8(NGTCP2_CRYPTO_TOKEN_MAGIC_RETRY): return .retry
        case UInt8(NGTCP2_CRYPTO_TOKEN_MAGIC_REGULAR): return .addressToken
        default: return .unknown
        }
    }

    /// A token for NEW_TOKEN: proof, on the client's next connection, that it owns `remote`'s IP address.
    func addressToken(for remote: SocketAddress) -> [UInt8]? {
        var token = [UInt8](repeating: 0, count: 1 + 8 + 16 + Int(NGTCP2_CRYPTO_TOKEN_RAND_DATALEN))
        let length = remote.withSockAddr { address, addressLength in
            secret.withUnsafeBufferPointer { secret in
                ngtcp2_crypto_generate_regular_token(
                    &token, secret.baseAddress, secret.count, address, ngtcp2_socklen(addressLength), cngtcp2_timestamp())
            }
        }
        guard length > 0 else { return nil }
        return Array(token.prefix(Int(length)))
    }

    /// Whether the NEW_TOKEN token in `header` is ours, unexpired and issued to `remote`'s address.
    func validatesAddressToken(_ header: ngtcp2_pkt_hd, from remote: SocketAddress) -> Bool {
        guard header.token.len > 0, let base = header.token.base else { return false }
        let result = remote.withSockAddr { address, length in
            secret.withUnsafeBufferPointer { secret in
                ngtcp2_crypto_verify_regular_token(
                    base, header.token.len, secret.baseAddress, secret.count, address, ngtcp2_socklen(length),
                    UInt64(addressTokenLifetime.nanoseconds), cngtcp2_timestamp())
            }
        }
        return result == 0
    }

    /// A Retry packet answering an Initial with header `header` from `remote`, and the
    /// connection ID it asks the client to use next.
    func retry(answering header: ngtcp2_pkt_hd, from remote: SocketAddress, allocator: ByteBufferAllocator) -> ByteBuffer? {
        var header = header
        var retrySCID = QUICConnectionID.random(length: QUICEndpoint.connectionIDLength).ngtcp2
        var token = [UInt8](repeating: 0, count: 1 + 1 + Int(NGTCP2_MAX_CIDLEN) + 8 + 16 + Int(NGTCP2_CRYPTO_TOKEN_RAND_DATALEN))
        let tokenLength = remote.withSockAddr { address, length in
            secret.withUnsafeBufferPointer { secret in
                ngtcp2_crypto_generate_retry_token(
                    &token, secret.baseAddress, secret.count, header.version, address, ngtcp2_socklen(length), &retrySCID,
                    &header.dcid, cngtcp2_timestamp())
            }
        }
        guard tokenLength > 0 else { return nil }
        var packet = allocator.buffer(capacity: 256)
        let written = packet.withUnsafeMutableWritableBytes { destination in
            ngtcp2_crypto_write_retry(
                destination.baseAddress?.assumingMemoryBound(to: UInt8.self), destination.count, header.version, &header.scid,
                &retrySCID, &header.dcid, token, Int(tokenLength))
        }
        guard written > 0 else { return nil }
        packet.moveWriterIndex(forwardBy: written)
        return packet
    }

    /// The original destination connection ID a Retry token in `header` vouches for, if the
    /// token is ours, unexpired and issued to `remote`.
    func originalDestinationID(validating header: ngtcp2_pkt_hd, from remote: SocketAddress) -> ngtcp2_cid? {
        var header = header
        guard header.token.len > 0, let base = header.token.base, base.pointee == UInt8(NGTCP2_CRYPTO_TOKEN_MAGIC_RETRY) else { return nil }
        var original = ngtcp2_cid()
        let result = remote.withSockAddr { address, length in
            secret.withUnsafeBufferPointer { secret in
                ngtcp2_crypto_verify_retry_token(
                    &original, base, header.token.len, secret.baseAddress, secret.count, header.version, address,
                    ngtcp2_socklen(length), &header.dcid, UInt64(tokenLifetime.nanoseconds), cngtcp2_timestamp())
            }
        }
        return result == 0 ? original : nil
    }

    /// A Version Negotiation packet offering QUIC v1 to a client whose packet carried the
    /// connection IDs `destination` and `source`.
    static func versionNegotiation(destination: [UInt8], source: [UInt8], allocator: ByteBufferAllocator) -> ByteBuffer? {
        var packet = allocator.buffer(capacity: 64 + destination.count + source.count)
        var versions: [UInt32] = [NGTCP2_PROTO_VER_V1]
        let written = packet.withUnsafeMutableWritableBytes { bytes in
            // The reply swaps the client's IDs: its source becomes our destination.
            ngtcp2_pkt_write_version_negotiation(
                bytes.baseAddress?.assumingMemoryBound(to: UInt8.self), bytes.count, UInt8.random(in: 0 ... 255), source, source.count,
                destination, destination.count, &versions, versions.count)
        }
        guard written > 0 else { return nil }
        packet.moveWriterIndex(forwardBy: written)
        return packet
    }
}
