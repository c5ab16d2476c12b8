import CNGTCP2
import NIOCore

/// The packets a server sends without a connection: Retry (address validation, RFC 9000 §8.1.2)
/// and Version Negotiation (§6). Retry tokens are sealed with a secret that lives as long as the
/// endpoint, bind the client's address and original destination connection ID, and expire.
struct QUICStatelessReplies {
    private let secret: [UInt8]
    /// How long a Retry token stays valid.
    let tokenLifetime: Duration

    init(tokenLifetime: Duration) {
        self.tokenLifetime = tokenLifetime
        secret = QUICConnectionID.random(length: 32).bytes
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
