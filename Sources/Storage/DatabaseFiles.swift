#if canImport(Glibc)
import Glibc
#endif

/// The database file and its directory, with owner-only modes: SQLite creates the `-wal` and
/// `-shm` files with the mode of the database file, so a file created 0600 keeps all three
/// private.
enum DatabaseFiles {
    /// Creates the missing directories of `path` (0700) and the file itself (0600) if absent.
    static func prepare(path: String) throws(SQLiteError) {
        guard !path.isEmpty, path != ":memory:", !path.hasPrefix("file:") else { return }
        try makeDirectories(parent(of: path))
        let descriptor = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else {
            throw SQLiteError(code: 14, message: "cannot create \(path): \(String(cString: strerror(errno)))")
        }
        close(descriptor)
    }

    /// Narrows the file and its `-wal`/`-shm` to 0600 when others may read them (files made by an
    /// earlier build).
    static func narrow(path: String) throws(SQLiteError) {
        guard !path.isEmpty, path != ":memory:", !path.hasPrefix("file:") else { return }
        for file in [path, path + "-wal", path + "-shm"] {
            var info = stat()
            guard stat(file, &info) == 0, info.st_mode & 0o077 != 0 else { continue }
            guard chmod(file, 0o600) == 0 else {
                throw SQLiteError(code: 3, message: "cannot make \(file) private (0600): \(String(cString: strerror(errno)))")
            }
        }
    }

    /// The directory part of `path` ("" for a bare file name).
    static func parent(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "" }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }

    /// Creates `directory` and its missing parents with mode 0700 (existing ones keep theirs).
    static func makeDirectories(_ directory: String) throws(SQLiteError) {
        guard !directory.isEmpty, directory != "/" else { return }
        var info = stat()
        if stat(directory, &info) == 0 { return }
        try makeDirectories(parent(of: directory))
        guard mkdir(directory, 0o700) == 0 || errno == EEXIST else {
            throw SQLiteError(code: 14, message: "cannot create the directory \(directory): \(String(cString: strerror(errno)))")
        }
    }
}
