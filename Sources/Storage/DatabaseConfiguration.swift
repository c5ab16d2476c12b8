/// How a ``Database`` opens its file and runs its writes. Every field has a documented default.
public struct DatabaseConfiguration: Sendable, Hashable {
    /// The SQLite file (created, mode 0600, with any missing directories, mode 0700).
    public var path: String
    /// `PRAGMA synchronous`: `NORMAL` (false, default; durable across process crashes, and
    /// across power loss up to the last checkpoint) or `FULL` (every commit synced).
    public var synchronousFull: Bool
    /// Upper bound on the file size in bytes; a write that would pass it fails with
    /// `SQLITE_FULL` and loses nothing committed. `nil` (default): no bound.
    public var maxSizeBytes: Int?
    /// How long a statement waits for another process's lock. Default 5 s.
    public var busyTimeout: Duration
    /// Log pages after which a commit checkpoints the log into the file (`PRAGMA
    /// wal_autocheckpoint`). Default 1000 (about 4 MiB, SQLite's default).
    public var walAutocheckpointPages: Int
    /// Writes that arrive together and commit in one transaction, at most. Default 256.
    public var maxGroupedWrites: Int
    /// Reads run on a second connection and thread of their own, beside the writer (WAL lets
    /// them read while a write commits). `false`: reads queue on the writer's thread (one thread
    /// and one page cache less, for small devices). Default true.
    public var separateReader: Bool
    /// New files free their deleted pages incrementally (`PRAGMA auto_vacuum = INCREMENTAL`,
    /// set before the first table exists; a file made before keeps its mode). Default false.
    public var incrementalVacuum: Bool
    /// SQLite's page cache per connection, in KiB. Default 2048 (SQLite's default).
    public var cacheKiB: Int

    /// Creates a configuration for the file at `path`.
    public init(path: String, synchronousFull: Bool = false, maxSizeBytes: Int? = nil, busyTimeout: Duration = .seconds(5),
                walAutocheckpointPages: Int = 1000, maxGroupedWrites: Int = 256, separateReader: Bool = true,
                incrementalVacuum: Bool = false, cacheKiB: Int = 2048) {
        self.path = path
        self.synchronousFull = synchronousFull
        self.maxSizeBytes = maxSizeBytes
        self.busyTimeout = busyTimeout
        self.walAutocheckpointPages = walAutocheckpointPages
        self.maxGroupedWrites = maxGroupedWrites
        self.separateReader = separateReader
        self.incrementalVacuum = incrementalVacuum
        self.cacheKiB = cacheKiB
    }
}
