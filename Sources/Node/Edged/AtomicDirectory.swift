import Foundation

/// A directory of files replaced all at once, as kubelet's atomic writer does for ConfigMap and
/// Secret volumes: the files live in `..{timestamp}/`, `..data` links to the current one, and
/// each top-level name links through `..data`. An update writes a new timestamped directory,
/// swaps `..data` with one `rename`, fixes the top-level links and deletes the old directory;
/// readers see either the old files or the new ones.
enum AtomicDirectory {
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    /// Makes `directory` hold exactly `files` (relative path → bytes and mode); does nothing
    /// when it does already. Returns whether anything was written.
    @discardableResult
    static func update(_ directory: String, with files: [String: (bytes: [UInt8], mode: Int)]) throws -> Bool {
        let manager = FileManager.default
        try manager.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let dataLink = directory + "/..data"
        let current = try? manager.destinationOfSymbolicLink(atPath: dataLink)
        if let current, holds(directory + "/" + current, exactly: files) { return false }

        let stamp = "..\(Date().timeIntervalSince1970)_\(UInt32.random(in: 0...UInt32.max))"
        let fresh = directory + "/" + stamp
        try manager.createDirectory(atPath: fresh, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o755])
        for (path, file) in files {
            let target = fresh + "/" + path
            let parent = (target as NSString).deletingLastPathComponent
            try manager.createDirectory(atPath: parent, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
            guard manager.createFile(atPath: target, contents: Data(file.bytes)) else { throw Failure(description: "cannot write \(target)") }
            guard chmod(target, mode_t(file.mode)) == 0 else { throw Failure(description: "cannot set the mode of \(target): \(String(cString: strerror(errno)))") }
        }
        let temporaryLink = directory + "/..data_tmp"
        try? manager.removeItem(atPath: temporaryLink)
        try manager.createSymbolicLink(atPath: temporaryLink, withDestinationPath: stamp)
        guard rename(temporaryLink, dataLink) == 0 else { throw Failure(description: "cannot switch \(dataLink): \(String(cString: strerror(errno)))") }

        let topLevel = Set(files.keys.map { String($0.split(separator: "/")[0]) })
        for name in topLevel where (try? manager.destinationOfSymbolicLink(atPath: directory + "/" + name)) == nil {
            try? manager.removeItem(atPath: directory + "/" + name)
            try manager.createSymbolicLink(atPath: directory + "/" + name, withDestinationPath: "..data/" + name)
        }
        for name in try manager.contentsOfDirectory(atPath: directory) where !name.hasPrefix("..") && !topLevel.contains(name) {
            try? manager.removeItem(atPath: directory + "/" + name)
        }
        if let current, current != stamp { try? manager.removeItem(atPath: directory + "/" + current) }
        return true
    }

    /// Whether `directory` holds `files` and nothing else, with the same bytes and modes.
    private static func holds(_ directory: String, exactly files: [String: (bytes: [UInt8], mode: Int)]) -> Bool {
        guard let enumerator = FileManager.default.enumerator(atPath: directory) else { return false }
        var seen = 0
        while let path = enumerator.nextObject() as? String {
            var info = stat()
            guard stat(directory + "/" + path, &info) == 0 else { return false }
            if info.st_mode & S_IFMT == S_IFDIR { continue }
            guard let file = files[path], Int(info.st_mode & 0o777) == file.mode,
                  let bytes = FileManager.default.contents(atPath: directory + "/" + path), bytes.elementsEqual(file.bytes) else { return false }
            seen += 1
        }
        return seen == files.count
    }
}
