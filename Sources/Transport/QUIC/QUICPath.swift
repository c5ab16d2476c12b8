import CNGTCP2
import NIOCore
#if canImport(Glibc)
import Glibc
#endif

/// The local and remote socket addresses of a connection as the `ngtcp2_path` ngtcp2 reads and
/// writes, in memory that lives as long as this object.
final class QUICPath {
    private let local = UnsafeMutablePointer<sockaddr_storage>.allocate(capacity: 1)
    private let remote = UnsafeMutablePointer<sockaddr_storage>.allocate(capacity: 1)
    /// Points into `local` and `remote`.
    let path = UnsafeMutablePointer<ngtcp2_path>.allocate(capacity: 1)

    init(local: SocketAddress, remote: SocketAddress) {
        self.local.initialize(to: sockaddr_storage())
        self.remote.initialize(to: sockaddr_storage())
        path.initialize(to: ngtcp2_path())
        path.pointee.local.addr = UnsafeMutableRawPointer(self.local).assumingMemoryBound(to: sockaddr.self)
        path.pointee.remote.addr = UnsafeMutableRawPointer(self.remote).assumingMemoryBound(to: sockaddr.self)
        set(local: local)
        set(remote: remote)
    }

    deinit {
        local.deallocate()
        remote.deallocate()
        path.deallocate()
    }

    func set(local address: SocketAddress) {
        path.pointee.local.addrlen = Self.copy(address, into: local)
    }

    func set(remote address: SocketAddress) {
        path.pointee.remote.addrlen = Self.copy(address, into: remote)
    }

    private static func copy(_ address: SocketAddress, into storage: UnsafeMutablePointer<sockaddr_storage>) -> ngtcp2_socklen {
        address.withSockAddr { pointer, length in
            UnsafeMutableRawPointer(storage).copyMemory(from: pointer, byteCount: length)
            return ngtcp2_socklen(length)
        }
    }
}
