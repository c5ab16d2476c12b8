import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Rules of the product's sources, checked on the sources themselves (so that a change that
/// breaks one fails here rather than in review): SQLite only behind Storage, and no
/// unstructured task in the product (every long-running part is a service whose `run()` owns its
/// children; benchmark and test code may do as they like).
@Suite struct SourceRulesTests {
    /// `Sources/` of this package, from this file's path.
    private static let sources: String = {
        var path = #filePath
        for _ in 0..<3 { path = String(path[..<path.lastIndex(of: "/")!]) }
        return path + "/Sources"
    }()

    /// Every `.swift` file under `directory`, with its text.
    private static func swiftFiles(in directory: String) -> [(path: String, text: String)] {
        var files: [(String, String)] = []
        guard let handle = opendir(directory) else { return [] }
        defer { closedir(handle) }
        while let entry = readdir(handle) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
            guard name != ".", name != ".." else { continue }
            let path = directory + "/" + name
            if entry.pointee.d_type == UInt8(DT_DIR) {
                files += swiftFiles(in: path)
            } else if name.hasSuffix(".swift"), let file = fopen(path, "r") {
                var text: [UInt8] = []
                var buffer = [UInt8](repeating: 0, count: 65_536)
                while true {
                    let count = fread(&buffer, 1, buffer.count, file)
                    if count <= 0 { break }
                    text += buffer[..<count]
                }
                fclose(file)
                files.append((path, String(decoding: text, as: UTF8.self)))
            }
        }
        return files
    }

    @Test func onlyStorageImportsSQLite() {
        let files = Self.swiftFiles(in: Self.sources)
        #expect(files.count > 100, "found the sources at \(Self.sources)")
        let offenders = files.filter { $0.text.contains("import CSQLite") && !$0.path.contains("/Sources/Storage/") }.map(\.path)
        #expect(offenders.isEmpty, "SQLite imported outside Storage: \(offenders)")
    }

    /// Whether `code` starts an unstructured task: `Task {`, `Task(…) {`, `Task.detached` (a
    /// task group's `addTask` is structured).
    static func startsTask(_ code: String) -> Bool {
        let characters = Array(code)
        for index in characters.indices where characters[index...].starts(with: "Task") {
            if index > characters.startIndex, characters[index - 1].isLetter || characters[index - 1].isNumber { continue }
            let rest = String(characters[(index + 4)...])
            if rest.hasPrefix(" {") || rest.hasPrefix("{") || rest.hasPrefix(".detached") || rest.hasPrefix("(priority") || rest.hasPrefix("(operation") {
                return true
            }
        }
        return false
    }

    @Test func theRuleTellsUnstructuredTasksFromChildTasks() {
        #expect(Self.startsTask("let task = Task { await run() }"))
        #expect(Self.startsTask("Task.detached { work() }"))
        #expect(Self.startsTask("_ = Task(priority: .high) { }"))
        #expect(!Self.startsTask("group.addTask { await run() }"))
        #expect(!Self.startsTask("try await Task.sleep(for: .seconds(1))"))
        #expect(!Self.startsTask("while !Task.isCancelled {"))
    }

    @Test func theProductStartsNoUnstructuredTask() {
        // The benchmark tool in Sources is not product code.
        let product = Self.swiftFiles(in: Self.sources).filter { !$0.path.contains("/Sources/channel-bench/") }
        var offenders: [String] = []
        for file in product {
            for (number, line) in file.text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
                let code = line.split(separator: "//", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
                if Self.startsTask(String(code)) {
                    offenders.append("\(file.path):\(number + 1): \(line.trimmingCharacters(in: .whitespaces))")
                }
            }
        }
        #expect(offenders.isEmpty, "unstructured tasks: \(offenders)")
    }
}

private extension Substring {
    func trimmingCharacters(in set: Set<Character>) -> String {
        String(drop { set.contains($0) })
    }
}

private extension Set where Element == Character {
    static let whitespaces: Set<Character> = [" ", "\t"]
}
