// cloudcore: the cloud daemon. For now its admin commands; the daemon itself (config, hubs,
// controllers) lands with the cloud controllers.
import ArgumentParser
import Foundation
import Transport

@main
struct CloudCore: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cloudcore",
        abstract: "The cloud side of swift-kubeedge.",
        subcommands: [GetToken.self])
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
