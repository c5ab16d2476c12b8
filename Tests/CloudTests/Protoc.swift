import Foundation
import TestSupport

/// Debian's `protoc` with Kubernetes' published schemas (`../shared/testdata/kubernetes-proto`):
/// an encoder and decoder that are not ours.
enum Protoc {
    static let testdata = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../../shared/testdata").standardized.path
    static let schemas = testdata + "/kubernetes-proto"

    /// Runs protoc with `arguments` on `input`; its standard output.
    private static func run(_ arguments: [String], input: [UInt8]) throws -> [UInt8] {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/protoc")
        process.arguments = ["-I", schemas] + arguments
        let stdin = Pipe(), stdout = Pipe(), stderr = Pipe()
        process.standardInput = stdin
        process.standardOutput = stdout
        process.standardError = stderr
        try process.run()
        let writer = Thread {
            stdin.fileHandleForWriting.write(Data(input))
            try? stdin.fileHandleForWriting.close()
        }
        writer.start()
        let output = Data(readToEnd(stdout.fileHandleForReading.fileDescriptor))
        let errors = String(decoding: readToEnd(stderr.fileHandleForReading.fileDescriptor), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw ProtocFailed(message: errors) }
        return [UInt8](output)
    }

    struct ProtocFailed: Error { let message: String }

    private static func file(of type: String) -> String {
        // k8s.io.api.core.v1.Pod → k8s.io/api/core/v1/generated.proto
        let package = type.split(separator: ".").dropFirst(2).dropLast().joined(separator: "/")
        return "k8s.io/" + package.replacingOccurrences(of: "apiextensions_apiserver", with: "apiextensions-apiserver") + "/generated.proto"
    }

    static func encode(_ text: String, as type: String) throws -> [UInt8] {
        try run(["--encode=\(type)", file(of: type)], input: Array(text.utf8))
    }

    static func decode(_ bytes: [UInt8], as type: String) throws -> String {
        String(decoding: try run(["--decode=\(type)", file(of: type)], input: bytes), as: UTF8.self)
    }
}
