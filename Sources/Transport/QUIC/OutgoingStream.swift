import CNGTCP2
import NIOCore

/// The send side of one QUIC stream: buffers queued by the channel, kept until the peer
/// acknowledges them, because ngtcp2 reads stream data in place (for retransmission too).
///
/// The buffers are never written to while held, so their storage does not move, and the
/// pointers handed to ngtcp2 stay valid until ``acknowledge(upTo:)`` releases the buffer.
struct OutgoingStream {
    /// Unacknowledged buffers in stream order.
    private var chunks = CircularBuffer<ByteBuffer>()
    /// Stream offset of the first readable byte of `chunks.first`.
    private var retainedFrom: UInt64 = 0
    /// Bytes ngtcp2 has taken (sent at least once).
    private(set) var sentOffset: UInt64 = 0
    /// Bytes queued in total.
    private var endOffset: UInt64 = 0
    private var fin = false
    private var finSent = false
    /// At most this many bytes are offered to ngtcp2 per write call.
    static let maxBytesPerWrite = 256 * 1024

    var retainedBytes: Int { Int(endOffset - retainedFrom) }
    var unsentBytes: Int { Int(endOffset - sentOffset) }
    var hasUnsent: Bool { sentOffset < endOffset || (fin && !finSent) }
    var finPending: Bool { fin && !finSent }

    mutating func append(_ data: ByteBuffer, fin: Bool) {
        if data.readableBytes > 0 {
            chunks.append(data)
            endOffset += UInt64(data.readableBytes)
        }
        if fin { self.fin = true }
    }

    /// Vectors over the bytes not yet taken by ngtcp2.
    func unsentVectors() -> [ngtcp2_vec] {
        var vectors: [ngtcp2_vec] = []
        var offset = retainedFrom
        var offered = 0
        for chunk in chunks {
            let length = UInt64(chunk.readableBytes)
            defer { offset += length }
            guard offset + length > sentOffset else { continue }
            let skip = Int(sentOffset > offset ? sentOffset - offset : 0)
            let base = chunk.withUnsafeReadableBytes { UnsafeMutableRawPointer(mutating: $0.baseAddress!) }
            vectors.append(ngtcp2_vec(base: (base + skip).assumingMemoryBound(to: UInt8.self), len: Int(length) - skip))
            offered += Int(length) - skip
            if offered >= Self.maxBytesPerWrite || vectors.count >= 64 { break }
        }
        return vectors
    }

    /// ngtcp2 took `count` more bytes.
    mutating func didSend(_ count: Int) {
        sentOffset += UInt64(count)
        if fin, sentOffset == endOffset { finSent = true }
    }

    /// The peer acknowledged every byte below `offset`: release whole buffers below it.
    mutating func acknowledge(upTo offset: UInt64) {
        while let first = chunks.first, retainedFrom + UInt64(first.readableBytes) <= offset {
            retainedFrom += UInt64(first.readableBytes)
            chunks.removeFirst()
        }
    }
}
