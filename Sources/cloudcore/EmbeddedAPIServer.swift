import Cloud
import Foundation
import Logging
import ServiceLifecycle

/// The embedded Kubernetes-compatible API server as cloudcore runs it: objects in
/// `{dataDirectory}/objects.db`, its PKI in `{dataDirectory}/pki` (created on first start), and
/// the admin kubeconfig written to `{dataDirectory}/admin.kubeconfig` once it listens.
final class EmbeddedAPIServer: Service, Sendable {
    let dataDirectory: String
    let bindAddress: String
    let credentials: APIServerCredentials
    let server: APIServer

    init(dataDirectory: String, bindAddress: String, port: Int, logger: Logger) throws {
        self.dataDirectory = dataDirectory
        self.bindAddress = bindAddress
        // Keys, the admin kubeconfig and the objects (Secrets among them): the owner's only.
        try FileManager.default.createDirectory(atPath: dataDirectory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let names = Array(Set([bindAddress, "127.0.0.1", "localhost"]).subtracting(["0.0.0.0", "::"])).sorted()
        credentials = try APIServerCredentials.loadOrCreate(directory: dataDirectory + "/pki", names: names)
        let store = try ObjectStore(configuration: .init(path: dataDirectory + "/objects.db"))
        server = APIServer(configuration: .init(host: bindAddress, port: port, security: .init(credentials: credentials)), store: store, logger: logger)
    }

    /// Where the kubeconfigs are: the admin's, for kubectl, and the one cloudcore's controllers
    /// use (their own least-privilege user, ``KubeEdgePolicy``).
    struct Kubeconfigs {
        let admin: String
        let controllers: String
        /// The embedded scheduler's (`system:kube-scheduler`).
        let scheduler: String
        /// The embedded workload controllers' (`system:kube-controller-manager`).
        let controllerManager: String
    }

    /// Binds the listener and writes the kubeconfigs (0600); returns their paths.
    /// ``APIServer/run()`` serves.
    func bind() async throws -> Kubeconfigs {
        let port = try await server.bind()
        let host = bindAddress == "0.0.0.0" || bindAddress == "::" ? "127.0.0.1" : bindAddress
        let url = "https://\(host.contains(":") ? "[\(host)]" : host):\(port)"
        return Kubeconfigs(admin: try credentials.writeKubeconfig(to: dataDirectory + "/admin.kubeconfig", server: url),
                           controllers: try credentials.writeKubeconfig(to: dataDirectory + "/cloudcore.kubeconfig", server: url,
                                                                        user: KubeEdgePolicy.cloudcoreUser, token: credentials.cloudcoreToken),
                           scheduler: try credentials.writeKubeconfig(to: dataDirectory + "/scheduler.kubeconfig", server: url,
                                                                      user: PodScheduler.user, token: credentials.schedulerToken),
                           controllerManager: try credentials.writeKubeconfig(to: dataDirectory + "/controller-manager.kubeconfig", server: url,
                                                                              user: ReplicaSetController.user, token: credentials.controllerManagerToken))
    }

    /// Serves until graceful shutdown or cancellation, then closes the store.
    func run() async throws {
        do {
            try await server.run()
        } catch {
            await server.store.close()
            throw error
        }
        await server.store.close()
    }
}
