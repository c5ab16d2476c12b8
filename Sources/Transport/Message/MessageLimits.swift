/// Bounds the message codec enforces before it allocates or slices anything.
public struct MessageLimits: Sendable, Hashable {
    /// Longest header or router string, in UTF-8 bytes. Default 4 KiB.
    public var maxStringLength: Int
    /// Longest content, in bytes. Default 16 MiB.
    public var maxContentLength: Int

    /// Creates limits; the defaults suit Kubernetes objects and bulk transfers alike.
    public init(maxStringLength: Int = 4 * 1024, maxContentLength: Int = 16 * 1024 * 1024) {
        self.maxStringLength = maxStringLength
        self.maxContentLength = maxContentLength
    }
}
