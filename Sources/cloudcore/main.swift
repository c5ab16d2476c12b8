// cloudcore: the cloud daemon. For now its admin commands and the embedded API server on its
// own; the daemon itself (config, hubs, controllers) lands with the cloud controllers.
import ArgumentParser
import Cloud
import Foundation
import Logging
import ServiceLifecycle
import Transport

@main
struct CloudCore: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cloudcore",
        abstract: "The cloud side of swift-kubeedge.",
        subcommands: [GetToken.self, APIServerCommand.self])
}

/// Runs the embedded Kubernetes API server: its data, CA and admin token in `--data-dir`
/// (created on first start), the admin kubeconfig written for kubectl.
struct APIServerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "apiserver",
        abstract: "Run the embedded Kubernetes-compatible API server (HTTPS, SQLite) and write an admin kubeconfig.")

    @Option(name: .customLong("data-dir"), help: "Where the objects (objects.db), the PKI and the admin kubeconfig live.")
    var dataDirectory = "/var/lib/kubeedge/apiserver"

    @Option(name: .customLong("bind-address"), help: "The address to listen on.")
    var bindAddress = "127.0.0.1"

    @Option(help: "The HTTPS port.")
    var port = 6443

    func run() async throws {
        LoggingSystem.bootstrap { StreamLogHandler.standardError(label: $0) }
        let logger = Logger(label: "cloudcore.apiserver")
        try FileManager.default.createDirectory(atPath: dataDirectory, withIntermediateDirectories: true)
        let names = Array(Set([bindAddress, "127.0.0.1", "localhost"]).subtracting(["0.0.0.0", "::"])).sorted()
        let credentials = try APIServerCredentials.loadOrCreate(directory: dataDirectory + "/pki", names: names)
        let store = try ObjectStore(configuration: .init(path: dataDirectory + "/objects.db"))
        let server = APIServer(configuration: .init(host: bindAddress, port: port, security: .init(credentials: credentials)), store: store, logger: logger)
        let group = ServiceGroup(configuration: .init(
            services: [APIServerService(server: server, credentials: credentials, dataDirectory: dataDirectory, bindAddress: bindAddress, logger: logger)],
            gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
    }
}

/// The API server as a lifecycle service: started, the kubeconfig written, stopped on SIGTERM.
struct APIServerService: Service {
    let server: APIServer
    let credentials: APIServerCredentials
    let dataDirectory: String
    let bindAddress: String
    let logger: Logger

    func run() async throws {
        let port = try await server.start()
        let host = bindAddress == "0.0.0.0" || bindAddress == "::" ? "127.0.0.1" : bindAddress
        let kubeconfig = try credentials.writeKubeconfig(to: dataDirectory + "/admin.kubeconfig", server: "https://\(host.contains(":") ? "[\(host)]" : host):\(port)")
        logger.info("API server ready", metadata: ["port": "\(port)", "kubeconfig": "\(kubeconfig)"])
        print("kubectl --kubeconfig \(kubeconfig) get namespaces")
        try? await gracefulShutdown()
        await server.stop()
    }
}

/// Prints a bootstrap token for edges to join with (KubeEdge's `keadm gettoken`).
struct GetToken: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gettoken",
        abstract: "Print a bootstrap token signed by the cloud's CA (created there on first use).",
        discussion: "The token is sha256hex(CA certificate).JWT, the JWT signed ES256 with the CA key; an edge joins with it once.")

    @Option(name: .customLong("certificates-dir"), help: "Where the CA lives (ca.crt, ca.key); CloudHub's certificatesDirectory.")
    var certificatesDirectory = "/etc/kubeedge/ca"

    @Option(help: "Hours the token stays valid.")
    var validityHours = 24

    func validate() throws {
        guard validityHours > 0 else { throw ValidationError("--validity-hours must be positive") }
    }

    func run() throws {
        try FileManager.default.createDirectory(atPath: certificatesDirectory, withIntermediateDirectories: true)
        let authority = try CertificateAuthority.loadOrCreate(
            certificatePath: certificatesDirectory + "/ca.crt", keyPath: certificatesDirectory + "/ca.key")
        print(try BootstrapToken.make(authority: authority, validity: .seconds(validityHours * 3600)))
    }
}
