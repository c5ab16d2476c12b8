import DaemonSupport
import Foundation

/// `cloudcore.yaml`, shaped like KubeEdge's (`apiVersion: cloudcore.config.kubeedge.io/v1alpha2`,
/// `kubeAPIConfig`, `modules.{cloudHub,edgeController,deviceController,syncController}` each with `enable`, the Prometheus
/// endpoint at `commonConfig.monitorServer`). A file need only say what differs from
/// ``CloudCoreConfig/init()``; unknown keys are errors. Durations are in seconds.
///
/// Where KubeEdge needs a Kubernetes cluster, cloudcore runs its embedded API server when
/// `kubeAPIConfig.kubeConfig` is empty (the default): `embeddedAPIServer` says where.
struct CloudCoreConfig: StrictYAMLConfig, Equatable {
    var apiVersion = "cloudcore.config.kubeedge.io/v1alpha2"
    var kind = "CloudCore"
    /// `trace`, `debug`, `info`, `notice`, `warning`, `error`, `critical`.
    var logLevel = "info"
    var commonConfig = CommonConfig()
    var kubeAPIConfig = KubeAPIConfig()
    var embeddedAPIServer = EmbeddedAPIServer()
    var modules = Modules()

    struct CommonConfig: Codable, Equatable {
        /// `host:port` of `GET /metrics` and `GET /healthz` (200 once cloudcore is ready);
        /// empty: none.
        var monitorServer = "127.0.0.1:9091"
    }

    struct KubeAPIConfig: Codable, Equatable {
        /// A kubeconfig for the cluster's API server; empty: the embedded API server.
        var kubeConfig = ""
        /// The kubeconfig context; empty: its current context.
        var context = ""
    }

    struct EmbeddedAPIServer: Codable, Equatable {
        /// Objects (`objects.db`), the PKI and the admin kubeconfig (`admin.kubeconfig`).
        var dataDirectory = "/var/lib/kubeedge/apiserver"
        var bindAddress = "127.0.0.1"
        var port = 6443
    }

    struct Modules: Codable, Equatable {
        var cloudHub = CloudHub()
        var edgeController = EdgeController()
        var deviceController = DeviceController()
        var syncController = SyncController()
    }

    struct DeviceController: Codable, Equatable {
        /// Sends Devices to their nodes and writes what the nodes report back to Device status.
        var enable = true
        /// Milliseconds over which device changes are gathered into one send.
        var batchInterval = 20
    }

    struct SyncController: Codable, Equatable {
        /// Records what each node was sent as ObjectSync objects, so that a restarted cloudcore
        /// resends only what changed and sends the deletes it missed.
        var enable = true
        /// ObjectSync writes in flight at once.
        var concurrentWrites = 8
    }

    struct CloudHub: Codable, Equatable {
        /// Must stay on: it is what edges connect to.
        var enable = true
        /// Addresses edges reach the hub at, written into its server certificate.
        var advertiseAddress = ["127.0.0.1"]
        /// Nodes connected or holding queued messages at once (KubeEdge: 500).
        var nodeLimit = 10_000
        /// Seconds between keepalives on a quiet connection; a node silent for three is dropped.
        var keepaliveInterval = 15
        /// The CA (`ca.crt`, `ca.key`) and the hub's certificate; created on first start.
        var certificatesDirectory = "/etc/kubeedge/ca"
        /// The outbox of cloud→edge messages (SQLite); kept across restarts.
        var outbox = "/var/lib/kubeedge/cloudhub-outbox.db"
        /// Hours a bootstrap token stays valid.
        var tokenValidityHours = 24
        /// Connections each of the WebSocket and QUIC listeners holds at once; more are refused
        /// and counted (node limit plus room for replacements).
        var maxConnections = 12_000
        /// QUIC handshakes in progress at once; Initial packets beyond are dropped and counted.
        var maxHandshakes = 1_000
        /// Seconds a new connection has to finish TLS and send its HELLO before it is closed.
        var helloTimeout = 10
        var websocket = Listener(port: 10000)
        var quic = Listener(port: 10001)
        var https = Listener(port: 10002)
    }

    struct Listener: Codable, Equatable {
        var enable = true
        var address = "0.0.0.0"
        var port: Int
    }

    struct EdgeController: Codable, Equatable {
        var enable = true
        /// Seconds a node may be disconnected before its Ready condition turns Unknown.
        var nodeNotReadyGracePeriod = 40
        /// Milliseconds over which object changes are gathered into one send.
        var batchInterval = 20
        /// Edge nodes whose reports (pod and node statuses, events, device twins) are written
        /// to the API server at once; each node's reports stay in order. (KubeEdge has a worker
        /// count per kind of report; here one pool serves them all.)
        var upstreamWorkers = 64
    }

    static func error(_ message: String) -> any Error { CloudCoreConfigError(message) }

    func validate() throws {
        if Self.logLevels.firstIndex(of: logLevel) == nil {
            throw CloudCoreConfigError("logLevel \(logLevel): use one of \(Self.logLevels.joined(separator: ", "))")
        }
        if !commonConfig.monitorServer.isEmpty { _ = try Self.hostPort(commonConfig.monitorServer, key: "commonConfig.monitorServer") }
        if kubeAPIConfig.kubeConfig.isEmpty {
            if embeddedAPIServer.dataDirectory.isEmpty { throw CloudCoreConfigError("embeddedAPIServer.dataDirectory must not be empty") }
            if !(0...65_535).contains(embeddedAPIServer.port) { throw CloudCoreConfigError("embeddedAPIServer.port \(embeddedAPIServer.port) is not a port") }
        }
        let hub = modules.cloudHub
        if !hub.enable {
            throw CloudCoreConfigError("modules.cloudHub.enable: cloudcore without CloudHub serves no edge; `cloudcore apiserver` runs the API server alone")
        }
        do {
            let listeners = [("websocket", hub.websocket), ("quic", hub.quic), ("https", hub.https)]
            for (name, listener) in listeners where !(0...65_535).contains(listener.port) {
                throw CloudCoreConfigError("modules.cloudHub.\(name).port \(listener.port) is not a port")
            }
            if !hub.websocket.enable { throw CloudCoreConfigError("modules.cloudHub.websocket.enable: the WebSocket listener is every edge's fallback; it cannot be turned off") }
            if !hub.https.enable { throw CloudCoreConfigError("modules.cloudHub.https.enable: edges join through the HTTPS endpoint; it cannot be turned off") }
            if Set(listeners.filter { $0.1.enable }.map(\.1.address)).count > 1 {
                throw CloudCoreConfigError("modules.cloudHub: websocket, quic and https must listen on the same address")
            }
            if hub.advertiseAddress.isEmpty { throw CloudCoreConfigError("modules.cloudHub.advertiseAddress must name at least one address") }
            if hub.nodeLimit < 1 { throw CloudCoreConfigError("modules.cloudHub.nodeLimit must be at least 1") }
            if hub.maxConnections < 1 { throw CloudCoreConfigError("modules.cloudHub.maxConnections must be at least 1") }
            if hub.maxHandshakes < 1 { throw CloudCoreConfigError("modules.cloudHub.maxHandshakes must be at least 1") }
            if hub.helloTimeout < 1 { throw CloudCoreConfigError("modules.cloudHub.helloTimeout must be at least 1 (seconds)") }
            if hub.keepaliveInterval < 1 { throw CloudCoreConfigError("modules.cloudHub.keepaliveInterval must be at least 1 second") }
            if hub.tokenValidityHours < 1 { throw CloudCoreConfigError("modules.cloudHub.tokenValidityHours must be at least 1") }
            if hub.certificatesDirectory.isEmpty { throw CloudCoreConfigError("modules.cloudHub.certificatesDirectory must not be empty") }
        }
        if modules.syncController.enable, modules.syncController.concurrentWrites < 1 {
            throw CloudCoreConfigError("modules.syncController.concurrentWrites must be at least 1")
        }
        // The workers serve every controller's upstream messages, whether or not this one runs.
        if modules.edgeController.upstreamWorkers < 1 { throw CloudCoreConfigError("modules.edgeController.upstreamWorkers must be at least 1") }
        if modules.edgeController.enable {
            if modules.edgeController.nodeNotReadyGracePeriod < 1 { throw CloudCoreConfigError("modules.edgeController.nodeNotReadyGracePeriod must be at least 1 second") }
            if modules.edgeController.batchInterval < 0 { throw CloudCoreConfigError("modules.edgeController.batchInterval must not be negative") }
        }
        if modules.deviceController.enable, modules.deviceController.batchInterval < 0 {
            throw CloudCoreConfigError("modules.deviceController.batchInterval must not be negative")
        }
    }

    static let logLevels = ["trace", "debug", "info", "notice", "warning", "error", "critical"]

    /// `host:port`, or an error naming the file and `key`.
    static func hostPort(_ text: String, key: String) throws -> (host: String, port: Int) {
        do {
            return try parseHostPort(text, key: key)
        } catch {
            throw CloudCoreConfigError("\(error)")
        }
    }
}

/// A configuration cloudcore cannot run with.
struct CloudCoreConfigError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = "cloudcore.yaml: \(description)" }
}
