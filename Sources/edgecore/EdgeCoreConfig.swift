import DaemonSupport
import Foundation
import KubeModel
import Node

/// `edgecore.yaml`, shaped like KubeEdge's (`apiVersion: edgecore.config.kubeedge.io/v1alpha2`,
/// `modules.{edgeHub,eventBus,metaManager,deviceTwin,serviceBus,edged}` each with `enable`).
/// A file need only say what differs from ``EdgeCoreConfig/init()``; unknown keys are errors
/// (a misspelt key would otherwise be silently ignored). Durations are in seconds.
struct EdgeCoreConfig: StrictYAMLConfig, Equatable {
    static var freeFormMappings: Set<String> { ["modules.edged.nodeLabels"] }
    var apiVersion = "edgecore.config.kubeedge.io/v1alpha2"
    var kind = "EdgeCore"
    /// `trace`, `debug`, `info`, `notice`, `warning`, `error`, `critical`.
    var logLevel = "info"
    var database = Database()
    var modules = Modules()
    var metrics = Metrics()

    struct Database: Codable, Equatable {
        /// The SQLite file MetaManager and DeviceTwin keep their tables in (KubeEdge's).
        var dataSource = "/var/lib/kubeedge/edgecore.db"
    }

    struct Metrics: Codable, Equatable {
        var enable = true
        /// `host:port` of the Prometheus endpoint (`GET /metrics`).
        var server = "127.0.0.1:10353"
    }

    struct Modules: Codable, Equatable {
        var edgeHub = EdgeHub()
        var eventBus = EventBus()
        var metaManager = MetaManager()
        var deviceTwin = DeviceTwin()
        var serviceBus = ServiceBus()
        var edged = Edged()
    }

    struct EdgeHub: Codable, Equatable {
        var enable = true
        /// Seconds between keepalives.
        var heartbeat = 15
        /// The cloud's certificate endpoint (joining, rotation).
        var httpServer = "https://127.0.0.1:10002"
        var quic = Endpoint(enable: true, server: "127.0.0.1:10001", handshakeTimeout: 3)
        var websocket = Endpoint(enable: true, server: "127.0.0.1:10000", handshakeTimeout: 30)
        /// A bootstrap token (`cloudcore gettoken`), used once to obtain the node certificate.
        var token = ""
        /// Where node.key, node.crt and ca.crt live (written by the join).
        var certificatesDirectory = "/etc/kubeedge/certs"
        /// The outbox of edge→cloud messages waiting for the cloud.
        var outbox = "/var/lib/kubeedge/edgehub-outbox.db"
        /// The name the cloud's certificate is checked against; empty: the server's host.
        var serverName = ""
    }

    struct Endpoint: Codable, Equatable {
        var enable: Bool
        var server: String
        var handshakeTimeout: Int
    }

    struct EventBus: Codable, Equatable {
        var enable = true
        /// 2: the external broker (the only mode this build has).
        var mqttMode = 2
        var mqttServerExternal = "tcp://127.0.0.1:1883"
        var mqttQOS = 1
        var mqttUsername = ""
        var mqttPassword = ""
        var tls = MQTTTLS()
    }

    struct MQTTTLS: Codable, Equatable {
        var enable = false
        var tlsMqttCAFile = "/etc/kubeedge/ca/rootCA.crt"
        var tlsMqttCertFile = ""
        var tlsMqttPrivateKeyFile = ""
    }

    struct MetaManager: Codable, Equatable {
        var enable = true
        /// Seconds a query waits for the cloud before the local store answers.
        var remoteQueryTimeout = 5
        var metaServer = MetaServer()
    }

    struct MetaServer: Codable, Equatable {
        var enable = true
        var server = "127.0.0.1:10550"
    }

    struct DeviceTwin: Codable, Equatable {
        var enable = true
        /// Reports of one device waiting for the cloud are coalesced to the newest.
        var coalesceReports = true
        var maxPayloadBytes = 65_536
    }

    struct ServiceBus: Codable, Equatable {
        var enable = true
        /// Seconds a call to a local server may take.
        var timeout = 30
        var maxRequestBytes = 1_048_576
        var maxResponseBytes = 4_194_304
        var allowedHosts = ["127.0.0.1", "localhost", "::1"]
    }

    struct Edged: Codable, Equatable {
        /// Runs the pods bound to this node (needs metaManager).
        var enable = true
        /// The node's name; empty: the host name.
        var hostnameOverride = ""
        /// Labels the Node gets when it registers (`keadm join --labels`); keys in kubernetes.io
        /// and k8s.io only as kubelet may set them (the cloud drops others).
        var nodeLabels: [String: String] = [:]
        /// The node's address (its InternalIP, pods' hostIP); empty: the first non-loopback IPv4.
        var nodeIP = ""
        /// Pod volumes and the process runtime's containers and logs.
        var rootDirectory = "/var/lib/edged"
        /// The cgroup v1 mount for CPU and memory limits; empty: limits are not applied.
        var cgroupRoot = "/sys/fs/cgroup"
        /// Seconds between passes over every pod (container ends, back-offs, probes).
        var syncFrequency = 1
        /// Seconds between reports of the node's status (Ready, addresses, capacity) to the cloud.
        var nodeStatusUpdateFrequency = 10
        /// A container log larger than this is rotated (a quantity: `10Mi`).
        var containerLogMaxSize = "10Mi"
        /// Rotated logs kept per container.
        var containerLogMaxFiles = 5
        /// Seconds between looks at the logs' sizes for rotation (kubelet's containerLogMonitorInterval).
        var containerLogMonitorInterval = 10
        /// `process` runs containers' commands as host processes; `remote` runs images in a
        /// CRI runtime (containerd) at `remoteRuntimeEndpoint`.
        var containerRuntime = "process"
        var remoteRuntimeEndpoint = "unix:///run/containerd/containerd.sock"
        /// Seconds a CRI call may take (beyond a stop's grace period or an exec's timeout).
        var runtimeRequestTimeout = 10
        /// The largest CRI reply taken (a quantity: `16Mi`).
        var runtimeMaxMessageSize = "16Mi"
    }

    static func error(_ message: String) -> any Error { EdgeCoreConfigError(message) }

    func validate() throws {
        if modules.edged.enable {
            if !modules.metaManager.enable { throw EdgeCoreConfigError("modules.edged.enable: Edged runs the pods metaManager holds; enable modules.metaManager too") }
            if !modules.edged.nodeIP.isEmpty, !Self.isIPAddress(modules.edged.nodeIP) {
                throw EdgeCoreConfigError("modules.edged.nodeIP \(modules.edged.nodeIP) is not an IP address")
            }
            if modules.edged.rootDirectory.isEmpty { throw EdgeCoreConfigError("modules.edged.rootDirectory must not be empty") }
            for (key, value) in modules.edged.nodeLabels.sorted(by: { $0.key < $1.key }) {
                if let problem = KubeNameRules.qualifiedNameProblems(key).first { throw EdgeCoreConfigError("modules.edged.nodeLabels: invalid key \"\(key)\": \(problem)") }
                if let problem = KubeNameRules.labelValueProblems(value).first { throw EdgeCoreConfigError("modules.edged.nodeLabels: invalid value \"\(value)\" of \(key): \(problem)") }
            }
            if modules.edged.nodeStatusUpdateFrequency < 1 { throw EdgeCoreConfigError("modules.edged.nodeStatusUpdateFrequency must be at least 1 second") }
            if modules.edged.syncFrequency < 1 { throw EdgeCoreConfigError("modules.edged.syncFrequency must be at least 1 second") }
            if modules.edged.containerLogMaxFiles < 1 { throw EdgeCoreConfigError("modules.edged.containerLogMaxFiles must be at least 1") }
            if modules.edged.containerLogMonitorInterval < 1 { throw EdgeCoreConfigError("modules.edged.containerLogMonitorInterval must be at least 1 second") }
            _ = try containerLogMaxBytes()
            switch modules.edged.containerRuntime {
            case "process": break
            case "remote":
                guard CRIRuntime.endpointSocketPath(modules.edged.remoteRuntimeEndpoint) != nil else {
                    throw EdgeCoreConfigError("modules.edged.remoteRuntimeEndpoint \(modules.edged.remoteRuntimeEndpoint) is not unix:///path/to/socket")
                }
                if modules.edged.runtimeRequestTimeout < 1 { throw EdgeCoreConfigError("modules.edged.runtimeRequestTimeout must be at least 1 second") }
                _ = try runtimeMaxMessageBytes()
            default:
                throw EdgeCoreConfigError("modules.edged.containerRuntime \(modules.edged.containerRuntime): use process or remote")
            }
        }
        if modules.eventBus.enable, modules.eventBus.mqttMode != 2 {
            throw EdgeCoreConfigError("modules.eventBus.mqttMode \(modules.eventBus.mqttMode): only 2 (an external broker) is supported")
        }
        if modules.eventBus.enable { _ = try Self.hostPort(modules.eventBus.mqttServerExternal, scheme: "tcp", key: "modules.eventBus.mqttServerExternal") }
        if ![0, 1].contains(modules.eventBus.mqttQOS) { throw EdgeCoreConfigError("modules.eventBus.mqttQOS must be 0 or 1") }
        if modules.edgeHub.enable {
            if modules.edgeHub.quic.enable { _ = try Self.hostPort(modules.edgeHub.quic.server, key: "modules.edgeHub.quic.server") }
            if modules.edgeHub.websocket.enable { _ = try Self.hostPort(modules.edgeHub.websocket.server, key: "modules.edgeHub.websocket.server") }
            if !modules.edgeHub.quic.enable, !modules.edgeHub.websocket.enable {
                throw EdgeCoreConfigError("modules.edgeHub: enable quic, websocket or both")
            }
            _ = try Self.hostPort(modules.edgeHub.httpServer, scheme: "https", key: "modules.edgeHub.httpServer")
            if modules.edgeHub.heartbeat < 1 { throw EdgeCoreConfigError("modules.edgeHub.heartbeat must be at least 1 second") }
        }
        if modules.metaManager.metaServer.enable { _ = try Self.hostPort(modules.metaManager.metaServer.server, key: "modules.metaManager.metaServer.server") }
        if metrics.enable { _ = try Self.hostPort(metrics.server, key: "metrics.server") }
        for (key, value) in [("modules.metaManager.remoteQueryTimeout", modules.metaManager.remoteQueryTimeout), ("modules.serviceBus.timeout", modules.serviceBus.timeout)]
        where value < 1 {
            throw EdgeCoreConfigError("\(key) must be at least 1 second")
        }
        if nodeName.isEmpty { throw EdgeCoreConfigError("modules.edged.hostnameOverride: no node name and no host name") }
    }

    /// `host:port` (after `scheme://` when given), or an error naming the file and `key`.
    static func hostPort(_ text: String, scheme: String? = nil, key: String) throws -> (host: String, port: Int) {
        do {
            return try parseHostPort(text, scheme: scheme, key: key)
        } catch {
            throw EdgeCoreConfigError("\(error)")
        }
    }

    static func isIPAddress(_ text: String) -> Bool {
        var v4 = in_addr()
        var v6 = in6_addr()
        return inet_pton(AF_INET, text, &v4) == 1 || inet_pton(AF_INET6, text, &v6) == 1
    }

    /// `modules.edged.runtimeMaxMessageSize` in bytes.
    func runtimeMaxMessageBytes() throws -> Int {
        guard let size = Quantity(modules.edged.runtimeMaxMessageSize), size.value >= 4096, size.value <= Int64(Int32.max) else {
            throw EdgeCoreConfigError("modules.edged.runtimeMaxMessageSize \(modules.edged.runtimeMaxMessageSize) is not a size from 4Ki to 2Gi (say 16Mi)")
        }
        return Int(size.value)
    }

    /// `modules.edged.containerLogMaxSize` in bytes.
    func containerLogMaxBytes() throws -> Int {
        guard let size = Quantity(modules.edged.containerLogMaxSize), size.value >= 1024 else {
            throw EdgeCoreConfigError("modules.edged.containerLogMaxSize \(modules.edged.containerLogMaxSize) is not a size of at least 1Ki (say 10Mi)")
        }
        return Int(size.value)
    }

    /// The node's name: `modules.edged.hostnameOverride`, else the host name, lower-cased.
    var nodeName: String {
        modules.edged.hostnameOverride.isEmpty ? ProcessInfo.processInfo.hostName.lowercased() : modules.edged.hostnameOverride
    }
}

/// A configuration edgecore cannot run with.
struct EdgeCoreConfigError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = "edgecore.yaml: \(description)" }
}
