#if canImport(Glibc)
import Glibc
#endif

/// Disk space held in a file of zeros so that it can be given back when the disk is full.
/// Not thread-safe: the outbox uses it under its lock.
final class DiskReserve: @unchecked Sendable {
    private let path: String
    private let bytes: Int
    private(set) var isHeld = false

    init(path: String, bytes: Int) {
        self.path = path
        self.bytes = bytes
    }

    /// Writes the file (best effort: a disk without the room holds no reserve until later).
    func hold() {
        guard bytes > 0, !isHeld else { return }
        let descriptor = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { return }
        defer { close(descriptor) }
        let chunk = [UInt8](repeating: 0, count: 64 << 10)
        var written = 0
        while written < bytes {
            let count = chunk.withUnsafeBytes { write(descriptor, $0.baseAddress, min($0.count, bytes - written)) }
            guard count > 0 else {
                unlink(path)
                return
            }
            written += count
        }
        // No fsync: file systems charge the blocks at write time (delayed allocation included).
        isHeld = true
    }

    /// Deletes the file; whether there was one to give up.
    func release() -> Bool {
        guard isHeld else { return false }
        isHeld = false
        unlink(path)
        return true
    }
}
