import Foundation
import KubeModel

/// The Kubernetes CRI (`runtime.v1`) messages Edged sends and reads, with the field numbers of
/// the CRI's `api.proto`. Only the fields Edged uses are written; unknown fields in replies are
/// skipped.
enum CRI {
    static let runtimeService = "/runtime.v1.RuntimeService/"
    static let imageService = "/runtime.v1.ImageService/"

    /// `NamespaceMode`.
    enum NamespaceMode: Int64 { case pod = 0, container = 1, node = 2 }

    /// `ContainerState`.
    enum ContainerStateCode: Int64 { case created = 0, running = 1, exited = 2, unknown = 3 }

    /// `PodSandboxConfig`: a pod's sandbox.
    struct SandboxConfig: Sendable, Equatable {
        var name: String
        var namespace: String
        var uid: String
        var attempt: Int
        var hostNetwork: Bool
        var logDirectory: String
        var labels: [String: String]

        func encode(into writer: inout ProtobufWriter) {
            writer.message(1) { metadata in
                metadata.string(1, name)
                metadata.string(2, uid)
                metadata.string(3, namespace)
                metadata.int(4, Int64(attempt))
            }
            // Host-network pods take the host's name (kubelet leaves it empty for them).
            if !hostNetwork { writer.string(2, String(name.prefix(63))) }
            writer.string(3, logDirectory)
            writer.map(6, labels)
            writer.message(8) { linux in
                linux.message(2) { security in
                    security.message(1) { namespaces in
                        namespaces.int(1, (hostNetwork ? NamespaceMode.node : .pod).rawValue)
                        namespaces.int(2, NamespaceMode.container.rawValue)
                    }
                }
            }
        }
    }

    /// `ContainerConfig`: one container of a sandbox.
    struct ContainerConfig: Sendable {
        var name: String
        var attempt: Int
        var image: String
        var command: [String]
        var args: [String]
        var workingDirectory: String?
        var environment: [String: String]
        var mounts: [ContainerMount]
        var labels: [String: String]
        /// Relative to the sandbox's log directory.
        var logPath: String
        var resources: ContainerResources
        var hostNetwork: Bool

        func encode(into writer: inout ProtobufWriter) {
            writer.message(1) { metadata in
                metadata.string(1, name)
                metadata.int(2, Int64(attempt))
            }
            writer.message(2) { $0.string(1, image) }
            writer.strings(3, command)
            writer.strings(4, args)
            writer.string(5, workingDirectory ?? "")
            for (key, value) in environment.sorted(by: { $0.key < $1.key }) {
                writer.message(6) { pair in
                    pair.string(1, key)
                    pair.string(2, value)
                }
            }
            for mount in mounts {
                writer.message(7) { entry in
                    entry.string(1, mount.destination)
                    entry.string(2, mount.source)
                    entry.bool(3, mount.readOnly)
                }
            }
            writer.map(9, labels)
            writer.string(11, logPath)
            writer.message(15) { linux in
                linux.message(1) { limits in
                    // As kubelet converts them: a CFS period of 100 ms, shares of 1024 per core.
                    if let cpu = resources.cpuLimitMillicores {
                        limits.int(1, 100_000)
                        limits.int(2, max(1_000, cpu * 100))
                    }
                    limits.int(3, resources.cpuRequestMillicores.map { max(2, $0 * 1024 / 1000) } ?? 2)
                    limits.int(4, resources.memoryLimitBytes ?? 0)
                }
                linux.message(2) { security in
                    security.message(3) { namespaces in
                        namespaces.int(1, (hostNetwork ? NamespaceMode.node : .pod).rawValue)
                        namespaces.int(2, NamespaceMode.container.rawValue)
                    }
                }
            }
        }
    }

    /// A container as `ListContainers` reports it.
    struct Container: Sendable {
        var id = ""
        var sandboxID = ""
        var name = ""
        var attempt = 0
        /// proto3 leaves out zero values: no state is `CONTAINER_CREATED`.
        var state = ContainerStateCode.created
        var labels: [String: String] = [:]

        init(_ value: ProtobufReader.Value) throws(ProtobufDecodingError) {
            var reader = value.message
            while let (field, value) = try reader.next() {
                switch field {
                case 1: id = value.string
                case 2: sandboxID = value.string
                case 3: (name, attempt) = try CRI.metadata(value)
                case 6: state = ContainerStateCode(rawValue: value.int64) ?? .unknown
                case 8: let (key, mapped) = try ProtobufReader.mapEntry(value); labels[key] = mapped
                default: continue
                }
            }
        }
    }

    /// `ContainerStatus`: where a container is, and how it ended.
    struct ContainerStatus: Sendable {
        var id = ""
        /// proto3 leaves out zero values: no state is `CONTAINER_CREATED`.
        var state = ContainerStateCode.created
        /// Nanoseconds since 1970.
        var createdAt: Int64 = 0
        var startedAt: Int64 = 0
        var finishedAt: Int64 = 0
        var exitCode: Int32 = 0
        /// The image the runtime resolved, by digest (kubelet's `imageID`).
        var imageRef = ""
        var reason = ""
        var message = ""

        init(reply: [UInt8]) throws(ProtobufDecodingError) {
            var response = ProtobufReader(reply)
            while let (field, value) = try response.next() {
                guard field == 1 else { continue }
                var reader = value.message
                while let (field, value) = try reader.next() {
                    switch field {
                    case 1: id = value.string
                    case 3: state = ContainerStateCode(rawValue: value.int64) ?? .unknown
                    case 4: createdAt = value.int64
                    case 5: startedAt = value.int64
                    case 6: finishedAt = value.int64
                    case 7: exitCode = value.int32
                    case 9: imageRef = value.string
                    case 10: reason = value.string
                    case 11: message = value.string
                    default: continue
                    }
                }
            }
        }
    }

    /// A sandbox as `ListPodSandbox` reports it.
    struct Sandbox: Sendable {
        var id = ""
        var attempt = 0
        /// proto3 leaves out zero values: no state is `SANDBOX_READY`.
        var ready = true
        var labels: [String: String] = [:]

        init(_ value: ProtobufReader.Value) throws(ProtobufDecodingError) {
            var reader = value.message
            while let (field, value) = try reader.next() {
                switch field {
                case 1: id = value.string
                case 2:
                    var metadata = value.message
                    while let (field, value) = try metadata.next() { if field == 4 { attempt = Int(value.int64) } }
                case 3: ready = value.int64 == 0  // SANDBOX_READY
                case 5: let (key, mapped) = try ProtobufReader.mapEntry(value); labels[key] = mapped
                default: continue
                }
            }
        }
    }

    /// `ExecSyncResponse`.
    struct ExecReply: Sendable {
        var stdout: [UInt8] = []
        var stderr: [UInt8] = []
        var exitCode: Int32 = 0

        init(reply: [UInt8]) throws(ProtobufDecodingError) {
            var reader = ProtobufReader(reply)
            while let (field, value) = try reader.next() {
                switch field {
                case 1: stdout = value.data
                case 2: stderr = value.data
                case 3: exitCode = value.int32
                default: continue
                }
            }
        }
    }

    /// `ContainerMetadata`: name and attempt.
    private static func metadata(_ value: ProtobufReader.Value) throws(ProtobufDecodingError) -> (String, Int) {
        var reader = value.message
        var name = ""
        var attempt = 0
        while let (field, value) = try reader.next() {
            if field == 1 { name = value.string } else if field == 2 { attempt = Int(value.int64) }
        }
        return (name, attempt)
    }

    // MARK: requests

    /// A message of one string field 1 (many CRI requests are just an ID).
    static func id(_ value: String) -> [UInt8] {
        var writer = ProtobufWriter()
        writer.string(1, value)
        return writer.bytes
    }

    static func runPodSandbox(_ config: SandboxConfig) -> [UInt8] {
        var writer = ProtobufWriter()
        writer.message(1) { config.encode(into: &$0) }
        return writer.bytes
    }

    static func listPodSandbox(labels: [String: String]) -> [UInt8] {
        var writer = ProtobufWriter()
        writer.message(1) { $0.map(3, labels) }
        return writer.bytes
    }

    static func createContainer(sandboxID: String, _ config: ContainerConfig, sandbox: SandboxConfig) -> [UInt8] {
        var writer = ProtobufWriter()
        writer.string(1, sandboxID)
        writer.message(2) { config.encode(into: &$0) }
        writer.message(3) { sandbox.encode(into: &$0) }
        return writer.bytes
    }

    static func stopContainer(_ id: String, timeoutSeconds: Int64) -> [UInt8] {
        var writer = ProtobufWriter()
        writer.string(1, id)
        writer.int(2, timeoutSeconds)
        return writer.bytes
    }

    static func listContainers(labels: [String: String]) -> [UInt8] {
        var writer = ProtobufWriter()
        writer.message(1) { $0.map(4, labels) }
        return writer.bytes
    }

    static func execSync(_ id: String, command: [String], timeoutSeconds: Int64) -> [UInt8] {
        var writer = ProtobufWriter()
        writer.string(1, id)
        writer.strings(2, command)
        writer.int(3, timeoutSeconds)
        return writer.bytes
    }

    /// `ImageStatusRequest` and `PullImageRequest` both hold the image at field 1.
    static func image(_ name: String) -> [UInt8] {
        var writer = ProtobufWriter()
        writer.message(1) { $0.string(1, name) }
        return writer.bytes
    }

    // MARK: replies

    /// Field 1 as a string (the ID in `RunPodSandboxResponse`, `CreateContainerResponse`, the
    /// version in `VersionResponse`, the reference in `PullImageResponse`).
    static func firstString(_ reply: [UInt8], field wanted: Int = 1) throws(ProtobufDecodingError) -> String {
        var reader = ProtobufReader(reply)
        while let (field, value) = try reader.next() { if field == wanted { return value.string } }
        return ""
    }

    /// Whether an `ImageStatusResponse` holds an image (it is absent when the image is not there).
    static func hasImage(_ reply: [UInt8]) throws(ProtobufDecodingError) -> Bool {
        var reader = ProtobufReader(reply)
        while let (field, _) = try reader.next() { if field == 1 { return true } }
        return false
    }

    static func containers(_ reply: [UInt8]) throws(ProtobufDecodingError) -> [Container] {
        var reader = ProtobufReader(reply)
        var containers: [Container] = []
        while let (field, value) = try reader.next() { if field == 1 { containers.append(try Container(value)) } }
        return containers
    }

    /// `ListImagesResponse`'s images: tags (field 2), digests (3) and size (4) of each.
    static func images(_ reply: [UInt8]) throws(ProtobufDecodingError) -> [(tags: [String], digests: [String], size: Int64)] {
        var reader = ProtobufReader(reply)
        var images: [(tags: [String], digests: [String], size: Int64)] = []
        while let (field, value) = try reader.next() {
            guard field == 1 else { continue }
            var image = value.message
            var entry: (tags: [String], digests: [String], size: Int64) = ([], [], 0)
            while let (field, value) = try image.next() {
                switch field {
                case 2: entry.tags.append(value.string)
                case 3: entry.digests.append(value.string)
                case 4: entry.size = value.int64
                default: continue
                }
            }
            images.append(entry)
        }
        return images
    }

    static func sandboxes(_ reply: [UInt8]) throws(ProtobufDecodingError) -> [Sandbox] {
        var reader = ProtobufReader(reply)
        var sandboxes: [Sandbox] = []
        while let (field, value) = try reader.next() { if field == 1 { sandboxes.append(try Sandbox(value)) } }
        return sandboxes
    }
}
