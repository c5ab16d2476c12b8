import ArgumentParser
import Cloud
import DaemonSupport
import Foundation
import Logging
import ServiceLifecycle
import Transport

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
        let server = try EmbeddedAPIServer(dataDirectory: dataDirectory, bindAddress: bindAddress, port: port, logger: logger)
        let kubeconfig = try await server.bind().admin
        logger.info("API server ready", metadata: ["kubeconfig": "\(kubeconfig)"])
        print("kubectl --kubeconfig \(kubeconfig) get namespaces")
        let group = ServiceGroup(configuration: .init(services: [server], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
    }
}

/// Prints a bootstrap token for edges to join with (KubeEdge's `keadm gettoken`).
struct GetToken: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gettoken",
        abstract: "Print a bootstrap token signed by the cloud's CA (created there on first use).",
        discussion: "The token is sha256hex(CA certificate).JWT, the JWT signed ES256 with the CA key; an edge joins with it once.")

    @Option(help: "A cloudcore.yaml: its modules.cloudHub.certificatesDirectory and tokenValidityHours are used.")
    var config: String?

    @Option(name: .customLong("certificates-dir"), help: "Where the CA lives (ca.crt, ca.key); CloudHub's certificatesDirectory.")
    var certificatesDirectory = "/etc/kubeedge/ca"

    @Option(help: "Hours the token stays valid.")
    var validityHours = 24

    func validate() throws {
        guard validityHours > 0 else { throw ValidationError("--validity-hours must be positive") }
    }

    func run() throws {
        var certificatesDirectory = certificatesDirectory
        var validityHours = validityHours
        if let config {
            do {
                let settings = try CloudCoreConfig.load(path: config, program: "cloudcore")
                certificatesDirectory = settings.modules.cloudHub.certificatesDirectory
                validityHours = settings.modules.cloudHub.tokenValidityHours
            } catch {
                throw ValidationError("\(config): \(error)")
            }
        }
        try FileManager.default.createDirectory(atPath: certificatesDirectory, withIntermediateDirectories: true)
        let authority = try CertificateAuthority.loadOrCreate(
            certificatePath: certificatesDirectory + "/ca.crt", keyPath: certificatesDirectory + "/ca.key")
        print(try BootstrapToken.make(authority: authority, validity: .seconds(validityHours * 3600)))
    }
}

/// Adds a user of the embedded API server: a client certificate from its CA (the user its
/// common name, the group its organization) that expires after `--valid-for`, in a new
/// kubeconfig (0600). The user may do nothing until RBAC binds a role to the user or group.
struct AddUser: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "adduser",
        abstract: "Write a kubeconfig for a new user of the embedded API server (a client certificate that expires).",
        discussion: "Bind it a role afterwards, e.g. kubectl create rolebinding alice-edit --clusterrole=edit --user=alice -n team.")

    @Argument(help: "The user name (a certificate's common name).")
    var user: String

    @Option(help: "The group the user is in (the certificate's organization).")
    var group = ""

    @Option(name: .customLong("valid-for"), help: "Hours the certificate stays valid.")
    var validHours = 24 * 30

    @Option(name: .customLong("data-dir"), help: "The embedded API server's data directory (its PKI is in pki/).")
    var dataDirectory = "/var/lib/kubeedge/apiserver"

    @Option(help: "The API server's URL written into the kubeconfig.")
    var server = "https://127.0.0.1:6443"

    @Option(name: .shortAndLong, help: "Where to write the kubeconfig (default {user}.kubeconfig).")
    var output: String?

    func validate() throws {
        guard validHours > 0 else { throw ValidationError("--valid-for must be a positive number of hours") }
        // system: names belong to the server's own identities (system:masters is cluster-admin).
        guard !user.hasPrefix("system:"), !group.hasPrefix("system:") else {
            throw ValidationError("names and groups starting with \"system:\" are reserved for the server's own identities")
        }
        guard !user.isEmpty, !user.contains(where: { $0.isNewline || $0 == "/" }) else { throw ValidationError("\"\(user)\" is not a user name") }
    }

    func run() throws {
        guard FileManager.default.fileExists(atPath: dataDirectory + "/pki/ca.key") else {
            throw ValidationError("no API server CA in \(dataDirectory)/pki: start cloudcore (or cloudcore apiserver) with this --data-dir first")
        }
        let authority = try CertificateAuthority.loadOrCreate(certificatePath: dataDirectory + "/pki/ca.crt", keyPath: dataDirectory + "/pki/ca.key")
        let path = try APIServerCredentials.writeUserKubeconfig(authority: authority, to: output ?? user + ".kubeconfig", server: server, user: user,
                                                                group: group, validity: .seconds(validHours * 3600))
        print(path)
    }
}
