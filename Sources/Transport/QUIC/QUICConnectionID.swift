import CNGTCP2

/// A QUIC connection ID (up to 20 bytes), hashable for demultiplexing datagrams.
struct QUICConnectionID: Hashable, Sendable, CustomStringConvertible {
    var bytes: [UInt8]

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    /// Copies the bytes out of an ngtcp2 connection ID.
    init(_ cid: UnsafePointer<ngtcp2_cid>) {
        let length = min(Int(cid.pointee.datalen), Int(NGTCP2_MAX_CIDLEN))
        let offset = MemoryLayout<ngtcp2_cid>.offset(of: \ngtcp2_cid.data)!
        bytes = Array(UnsafeRawBufferPointer(start: UnsafeRawPointer(cid) + offset, count: length))
    }

    /// A random ID of `length` bytes from GnuTLS's generator.
    static func random(length: Int = 18) -> QUICConnectionID {
        var bytes = [UInt8](repeating: 0, count: length)
        _ = bytes.withUnsafeMutableBytes { gnutls_rnd(GNUTLS_RND_RANDOM, $0.baseAddress, length) }
        return QUICConnectionID(bytes)
    }

    /// The ID as an ngtcp2 value.
    var ngtcp2: ngtcp2_cid {
        var cid = ngtcp2_cid()
        bytes.withUnsafeBufferPointer { ngtcp2_cid_init(&cid, $0.baseAddress, $0.count) }
        return cid
    }

    var description: String { bytes.map { String($0, radix: 16).leftPadded(to: 2) }.joined() }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
