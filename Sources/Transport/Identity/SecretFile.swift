import Foundation

/// Files that hold secrets (private keys, tokens, kubeconfigs): readable by their owner only.
public enum SecretFile {
    /// Writes `bytes` to `path` with mode 0600, replacing what was there.
    public static func write(_ bytes: [UInt8], to path: String) throws {
        try? FileManager.default.removeItem(atPath: path)
        guard FileManager.default.createFile(atPath: path, contents: Data(bytes), attributes: [.posixPermissions: 0o600]) else {
            throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: path])
        }
    }
}
