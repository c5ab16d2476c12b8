/// The records of an exec or attach stream between the cloud and Edged, numbered as
/// Kubernetes' remote-command channels: `channel u8 · length u32 (big-endian) · bytes`.
///
/// - 0 stdin (cloud → edge), 1 stdout and 2 stderr (edge → cloud);
/// - 3 status (edge → cloud): the `Status` JSON kube-apiserver passes on, last;
/// - 4 resize (cloud → edge): `{"Width":W,"Height":H}`;
/// - 255 close (cloud → edge): its one byte names the channel closed (0: end of stdin).
public enum NodeStreamRecords {
    public static let stdin: UInt8 = 0
    public static let stdout: UInt8 = 1
    public static let stderr: UInt8 = 2
    public static let status: UInt8 = 3
    public static let resize: UInt8 = 4
    public static let close: UInt8 = 255

    /// The head of a record of `length` bytes on `channel`.
    public static func head(channel: UInt8, length: Int) -> [UInt8] {
        let value = UInt32(length)
        return [channel, UInt8(value >> 24), UInt8(truncatingIfNeeded: value >> 16), UInt8(truncatingIfNeeded: value >> 8), UInt8(truncatingIfNeeded: value)]
    }

    /// Splits bytes arriving in any pieces into records, refusing one longer than `maxLength`.
    public struct Decoder: Sendable {
        public let maxLength: Int
        private var buffer: [UInt8] = []
        private var start = 0

        public init(maxLength: Int) { self.maxLength = maxLength }

        public enum Failure: Error, Equatable, Sendable {
            case tooLong(channel: UInt8, length: Int, limit: Int)
        }

        /// Adds received bytes.
        public mutating func append(_ bytes: some Sequence<UInt8>) { buffer.append(contentsOf: bytes) }

        /// The next whole record, if one is buffered.
        public mutating func next() throws(Failure) -> (channel: UInt8, payload: [UInt8])? {
            guard buffer.count - start >= 5 else { return compacted(nil) }
            let channel = buffer[start]
            let length = Int(buffer[start + 1]) << 24 | Int(buffer[start + 2]) << 16 | Int(buffer[start + 3]) << 8 | Int(buffer[start + 4])
            guard length <= maxLength else { throw .tooLong(channel: channel, length: length, limit: maxLength) }
            guard buffer.count - start >= 5 + length else { return compacted(nil) }
            let payload = Array(buffer[start + 5 ..< start + 5 + length])
            start += 5 + length
            return compacted((channel, payload))
        }

        private mutating func compacted<T>(_ value: T) -> T {
            if start > 0, start == buffer.count {
                buffer.removeAll(keepingCapacity: true)
                start = 0
            } else if start > 64 * 1024 {
                buffer.removeFirst(start)
                start = 0
            }
            return value
        }
    }
}
