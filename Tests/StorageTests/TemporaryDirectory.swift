#if canImport(Glibc)
import Glibc
#endif

/// A fresh directory under /tmp, removed by `body`'s end.
func withTemporaryDirectory<T>(_ body: (String) async throws -> T) async rethrows -> T {
    var template = Array("/tmp/storage-tests-XXXXXX".utf8CString)
    let path = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)!) }
    defer { _ = system("rm -rf '\(path)'") }
    return try await body(path)
}

/// The permission bits of `path`, or `nil` when it does not exist.
func mode(of path: String) -> UInt32? {
    var info = stat()
    guard stat(path, &info) == 0 else { return nil }
    return UInt32(info.st_mode) & 0o777
}

/// Something a write throws on purpose.
struct Refused: Error, Equatable {
    var index: Int
}
