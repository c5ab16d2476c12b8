import Foundation
import Yams

/// What a kubeconfig says about reaching one cluster as one user: the current context (or a
/// named one) resolved to server, trust, credentials and default namespace.
public struct Kubeconfig: Sendable, Equatable {
    /// `https://host:port` (or `http://`).
    public var server: String
    /// PEM of the CA that signs the server's certificate; `nil` for the system's roots.
    public var certificateAuthorityPEM: [UInt8]?
    public var insecureSkipTLSVerify: Bool
    public var token: String?
    /// PEM client certificate and key.
    public var clientCertificatePEM: [UInt8]?
    public var clientKeyPEM: [UInt8]?
    public var namespace: String

    public init(server: String, certificateAuthorityPEM: [UInt8]? = nil, insecureSkipTLSVerify: Bool = false, token: String? = nil,
                clientCertificatePEM: [UInt8]? = nil, clientKeyPEM: [UInt8]? = nil, namespace: String = "default") {
        self.server = server
        self.certificateAuthorityPEM = certificateAuthorityPEM
        self.insecureSkipTLSVerify = insecureSkipTLSVerify
        self.token = token
        self.clientCertificatePEM = clientCertificatePEM
        self.clientKeyPEM = clientKeyPEM
        self.namespace = namespace
    }

    /// Loads the file at `path`, resolving `context` (the current context when `nil`). Relative
    /// file references are resolved against the file's directory, as kubectl does.
    public static func load(path: String, context: String? = nil) throws -> Kubeconfig {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw KubeconfigError("cannot read \(path): \(error.localizedDescription)")
        }
        return try parse(text, context: context, directory: (path as NSString).deletingLastPathComponent)
    }

    public static func parse(_ yaml: String, context wanted: String? = nil, directory: String = ".") throws -> Kubeconfig {
        guard let root = try Yams.load(yaml: yaml) as? [String: Any] else { throw KubeconfigError("not a YAML mapping") }
        let contextName = wanted ?? (root["current-context"] as? String ?? "")
        guard !contextName.isEmpty else { throw KubeconfigError("no current-context and no context named") }
        guard let context = named(contextName, in: root["contexts"], field: "context") else { throw KubeconfigError("no context \(contextName)") }
        let clusterName = context["cluster"] as? String ?? ""
        guard let cluster = named(clusterName, in: root["clusters"], field: "cluster") else { throw KubeconfigError("no cluster \(clusterName) (context \(contextName))") }
        let user = named(context["user"] as? String ?? "", in: root["users"], field: "user") ?? [:]
        guard let server = cluster["server"] as? String, !server.isEmpty else { throw KubeconfigError("cluster \(clusterName) has no server") }
        let file = { (key: String) throws -> [UInt8]? in
            guard let value = (cluster[key] ?? user[key]) as? String else { return nil }
            let path = value.hasPrefix("/") ? value : directory + "/" + value
            guard let data = FileManager.default.contents(atPath: path) else { throw KubeconfigError("\(key): cannot read \(path)") }
            return Array(data)
        }
        let inline = { (key: String) throws -> [UInt8]? in
            guard let value = (cluster[key] ?? user[key]) as? String else { return nil }
            guard let data = Data(base64Encoded: value, options: .ignoreUnknownCharacters) else { throw KubeconfigError("\(key) is not base64") }
            return Array(data)
        }
        var token = user["token"] as? String
        if token == nil, let tokenFile = user["tokenFile"] as? String {
            let path = tokenFile.hasPrefix("/") ? tokenFile : directory + "/" + tokenFile
            token = (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        return Kubeconfig(
            server: server, certificateAuthorityPEM: try inline("certificate-authority-data") ?? file("certificate-authority"),
            insecureSkipTLSVerify: cluster["insecure-skip-tls-verify"] as? Bool ?? false, token: token,
            clientCertificatePEM: try inline("client-certificate-data") ?? file("client-certificate"),
            clientKeyPEM: try inline("client-key-data") ?? file("client-key"),
            namespace: (context["namespace"] as? String).flatMap { $0.isEmpty ? nil : $0 } ?? "default")
    }

    private static func named(_ name: String, in list: Any?, field: String) -> [String: Any]? {
        for entry in list as? [[String: Any]] ?? [] where entry["name"] as? String == name {
            return entry[field] as? [String: Any] ?? [:]
        }
        return nil
    }
}

/// A kubeconfig that cannot be used, and why.
public struct KubeconfigError: Error, CustomStringConvertible, Equatable {
    public var description: String
    init(_ description: String) { self.description = "kubeconfig: \(description)" }
}
