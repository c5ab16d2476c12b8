import Foundation
import KubeModel

/// The status of the edge node as Edged reports it to the cloud every
/// ``Edged/Configuration/nodeStatusUpdateFrequency``: `Ready` with a fresh heartbeat time,
/// addresses, capacity and allocatable (CPUs, memory, pods), `nodeInfo`, and the labels the
/// node asks for at registration.
struct NodeStatus: Sendable {
    /// The port advertised in `status.daemonEndpoints.kubeletEndpoint` (KubeEdge's).
    static let kubeletPort = 10350
    /// The pods a node takes (kubelet's `maxPods`).
    static let maxPods = 110
    /// What `nodeInfo.kubeletVersion` says: the Kubernetes API level Edged follows, and that it is this project's.
    static let kubeletVersion = "v1.31.0-swift-kubeedge"
    /// Images listed in `status.images`, the largest first, and names listed per image
    /// (kubelet's `nodeStatusMaxImages` and its limit on names).
    static let maxImages = 50
    static let maxNamesPerImage = 5

    let nodeName: String
    let nodeIP: String
    /// When Edged became ready (the `Ready` condition's transition time).
    let readySince: Date
    let containerRuntimeVersion: String
    /// The labels the node asks for when it registers (the cloud applies them then).
    var labels: [String: String] = [:]
    /// Where pods' volumes and logs go: its filesystem's size is the node's `ephemeral-storage`
    /// (kube-scheduler refuses a pod that requests some on a node that reports none).
    var storagePath = "/"
    /// The runtime's images (see ``NodeImage``).
    var images: [NodeImage] = []

    /// The Node object to send: metadata and status only.
    func object(now: Date = Date()) -> JSONValue {
        let resources = JSONValue.object(JSONObject([
            ("cpu", .string(String(ProcessInfo.processInfo.activeProcessorCount))),
            ("memory", .string("\(Self.memoryKibibytes())Ki")),
            ("pods", .string(String(Self.maxPods))),
            ("ephemeral-storage", .string("\(Self.filesystemKibibytes(at: storagePath))Ki")),
        ]))
        let ready = JSONValue.object(JSONObject([
            ("type", .string("Ready")), ("status", .string("True")), ("reason", .string("EdgeReady")),
            ("message", .string("edged is posting ready status")),
            ("lastHeartbeatTime", .string(now.formatted(.iso8601))), ("lastTransitionTime", .string(readySince.formatted(.iso8601))),
        ]))
        let nodeInfo = JSONValue.object(JSONObject([
            ("kubeletVersion", .string(Self.kubeletVersion)), ("kubeProxyVersion", .string("")),
            ("operatingSystem", .string("linux")), ("architecture", .string(Self.architecture)),
            ("kernelVersion", .string(Self.kernelVersion())), ("osImage", .string(Self.osImage())),
            ("containerRuntimeVersion", .string(containerRuntimeVersion)),
            ("machineID", .string(Self.firstLine("/etc/machine-id"))), ("bootID", .string(Self.firstLine("/proc/sys/kernel/random/boot_id"))),
            ("systemUUID", .string("")),
        ]))
        var status = JSONObject([
            ("conditions", .array([ready])),
            ("addresses", .array([
                .object(JSONObject([("type", .string("InternalIP")), ("address", .string(nodeIP))])),
                .object(JSONObject([("type", .string("Hostname")), ("address", .string(nodeName))])),
            ])),
            ("capacity", resources), ("allocatable", resources), ("nodeInfo", nodeInfo),
            // KubeEdge's edged advertises its kubelet port, 10350, where the cloud's stream
            // tunnel reaches it for logs and exec.
            ("daemonEndpoints", .object(JSONObject([("kubeletEndpoint", .object(JSONObject([("Port", .integer(Self.kubeletPort))])))]))),
        ])
        // The largest images first, as kubelet lists them; nameless ones left out.
        let listed = images.filter { !$0.names.isEmpty }.sorted { $0.sizeBytes > $1.sizeBytes }.prefix(Self.maxImages)
        if !listed.isEmpty {
            status["images"] = .array(listed.map { image in
                .object(JSONObject([("names", .array(image.names.prefix(Self.maxNamesPerImage).map(JSONValue.string))), ("sizeBytes", .integer(Int(image.sizeBytes)))]))
            })
        }
        return .object(JSONObject([
            ("apiVersion", .string("v1")), ("kind", .string("Node")),
            ("metadata", .object(labels.isEmpty ? JSONObject([("name", .string(nodeName))]) : JSONObject([
                ("name", .string(nodeName)), ("labels", .object(JSONObject(labels.sorted { $0.key < $1.key }.map { ($0.key, JSONValue.string($0.value)) }))),
            ]))),
            ("status", .object(status)),
        ]))
    }

    static var architecture: String {
        #if arch(x86_64)
        "amd64"
        #elseif arch(arm64)
        "arm64"
        #else
        "unknown"
        #endif
    }

    /// `MemTotal` of `/proc/meminfo`.
    /// The size of the filesystem holding `path`, in KiB (0 if it cannot be read).
    static func filesystemKibibytes(at path: String) -> UInt64 {
        var stats = statvfs()
        var probe = path
        // The directory may not exist yet: its nearest existing parent is on the same filesystem.
        while statvfs(probe, &stats) != 0 {
            guard probe != "/", !probe.isEmpty else { return 0 }
            probe = (probe as NSString).deletingLastPathComponent
        }
        return UInt64(stats.f_blocks) * UInt64(stats.f_frsize) / 1024
    }

    static func memoryKibibytes() -> Int {
        guard let text = try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("MemTotal:") }),
              let value = line.split(separator: " ").dropFirst().first.flatMap({ Int($0) }) else { return 0 }
        return value
    }

    static func kernelVersion() -> String { firstLine("/proc/sys/kernel/osrelease") }

    /// `PRETTY_NAME` of `/etc/os-release`.
    static func osImage() -> String {
        guard let text = try? String(contentsOfFile: "/etc/os-release", encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("PRETTY_NAME=") }) else { return "Linux" }
        return line.dropFirst("PRETTY_NAME=".count).trimmingCharacters(in: CharacterSet(charactersIn: "\""))
    }

    static func firstLine(_ path: String) -> String {
        ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").split(separator: "\n").first.map(String.init) ?? ""
    }
}
