import CSQLite

/// Facts about the SQLite library this process linked.
public enum SQLiteLibrary {
    /// `sqlite3_libversion_number()`, e.g. 3040001 for 3.40.1.
    public static var versionNumber: Int32 { sqlite3_libversion_number() }
    /// Whether the library was built thread-safe (connections may live on different threads).
    public static var isThreadSafe: Bool { sqlite3_threadsafe() != 0 }
}
