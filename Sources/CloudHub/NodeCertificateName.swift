import Transport

/// Reads a node's name from the certificate it authenticated with.
enum NodeCertificateName {
    /// The node named by `certificate` (DER): common name `system:node:{node}` in organisation
    /// `system:nodes`. TLS has already checked that the CA signed it.
    static func node(in certificate: [UInt8]?) -> Result<String, Refusal> {
        guard let certificate else { return .failure(Refusal("a node certificate is required")) }
        let parsed: Certificate
        do {
            parsed = try Certificate(bytes: certificate, encoding: .der)
        } catch {
            return .failure(Refusal("the peer certificate does not parse: \(error)"))
        }
        let commonName = parsed.commonName
        guard parsed.organization == CertificateAuthority.nodeOrganization, commonName.hasPrefix(CertificateAuthority.nodeNamePrefix) else {
            return .failure(Refusal("certificate \"\(commonName)\" is not a node certificate (\(CertificateAuthority.nodeNamePrefix)NAME in \(CertificateAuthority.nodeOrganization))"))
        }
        let node = String(commonName.dropFirst(CertificateAuthority.nodeNamePrefix.count))
        do {
            try CertificateAuthority.validateNodeName(node)
        } catch {
            return .failure(Refusal("\(error)"))
        }
        return .success(node)
    }
}
