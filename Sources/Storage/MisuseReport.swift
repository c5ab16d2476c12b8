import Synchronization

/// Where a debug-build misuse check reports: by default it stops the process (`fatalError`);
/// a test installs a recorder to see the check fire without ending the test process.
package enum MisuseReport {
    private static let recorder = Mutex<(@Sendable (String) -> Void)?>(nil)

    /// Routes reports to `record` (or, with `nil`, back to `fatalError`).
    package static func install(_ record: (@Sendable (String) -> Void)?) {
        recorder.withLock { $0 = record }
    }

    /// Reports `message`: stops the process unless a recorder is installed.
    static func report(_ message: String) {
        if let record = recorder.withLock({ $0 }) {
            record(message)
        } else {
            fatalError(message)
        }
    }
}
