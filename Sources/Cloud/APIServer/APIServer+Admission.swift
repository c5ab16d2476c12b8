import KubeModel

/// Admission of what is written, in kube-apiserver's order: namespace lifecycle (nothing new in
/// a namespace being deleted), service accounts (``ServiceAccountAdmission``), then Pod Security
/// (``PodSecurity``). A new pod's namespace and service account are read together, in one read.
/// ``Configuration/admission`` off skips all of it (a bench's baseline only).
extension APIServer {
    /// A new pod as admission leaves it, and the warnings for the client.
    func admitNewPod(_ pod: JSONValue, key: ObjectKey) async throws -> (pod: JSONValue, warnings: [String]) {
        guard configuration.admission else { return (pod, []) }
        let account = ServiceAccountAdmission.accountName(of: pod)
        let found = try await store.get([
            ObjectKey(resource: "namespaces", namespace: "", name: key.namespace),
            ObjectKey(resource: "serviceaccounts", namespace: key.namespace, name: account),
        ])
        let (namespace, serviceAccount) = (found[0], found[1])
        try refuseIfTerminating(namespace, name: key.namespace)
        var admitted = pod
        // With a token signer, as kube-apiserver with service-account tokens.
        if configuration.security?.serviceAccountSigner != nil {
            guard let serviceAccount else {
                // As there, the namespace's absence is what a pod in a missing namespace hears.
                guard namespace != nil else { throw APIError(code: 404, reason: "NotFound", message: "namespaces \"\(key.namespace)\" not found") }
                throw ServiceAccountAdmission.missingAccount(pod: key.name, namespace: key.namespace, account: account)
            }
            admitted = ServiceAccountAdmission.admit(pod, account: serviceAccount)
        }
        return (admitted, try podSecurity(admitted, key: key, namespace: namespace))
    }

    /// Namespace lifecycle admission for any other new object.
    func refuseIfTerminating(_ namespace: String) async throws {
        guard configuration.admission else { return }
        try refuseIfTerminating(try await store.get(ObjectKey(resource: "namespaces", namespace: "", name: namespace)), name: namespace)
    }

    /// Pod Security admission of a pod written to `key`'s namespace (an update): refused (403)
    /// when it breaks the namespace's enforced level; the warnings of its `warn` level otherwise.
    func admitPodSecurity(_ pod: JSONValue, key: ObjectKey) async throws -> [String] {
        guard configuration.admission else { return [] }
        return try podSecurity(pod, key: key, namespace: try await store.get(ObjectKey(resource: "namespaces", namespace: "", name: key.namespace)))
    }

    private func refuseIfTerminating(_ namespace: JSONValue?, name: String) throws {
        guard namespace?[path: ["metadata", "deletionTimestamp"]] != nil else { return }
        throw APIError(code: 403, reason: "Forbidden",
                       message: "unable to create new content in namespace \(name) because it is being terminated",
                       details: .object(JSONObject([("causes", .array([.object(JSONObject([
                           ("reason", .string("NamespaceTerminating")),
                           ("message", .string("namespace \(name) is being terminated")), ("field", .string("metadata.namespace")),
                       ]))]))])))
    }

    private func podSecurity(_ pod: JSONValue, key: ObjectKey, namespace: JSONValue?) throws -> [String] {
        let (enforce, warn, audit) = PodSecurity.levels(of: namespace, name: key.namespace)
        let refused = PodSecurity.violations(of: pod, level: enforce)
        guard refused.isEmpty else { throw PodSecurity.forbidden(pod: key.name, level: enforce, violations: refused) }
        // Audit: what kube-apiserver puts in its audit log as `pod-security.kubernetes.io/audit-violations`.
        if let audit, audit > enforce {
            let audited = PodSecurity.violations(of: pod, level: audit)
            if !audited.isEmpty {
                logger.notice("pod security audit", metadata: [
                    "pod": "\(key.namespace)/\(key.name)",
                    "pod-security.kubernetes.io/audit-violations": "\(PodSecurity.warning(pod: key.name, level: audit, violations: audited))",
                ])
            }
        }
        guard let warn, warn > enforce else { return [] }
        let warned = PodSecurity.violations(of: pod, level: warn)
        return warned.isEmpty ? [] : [PodSecurity.warning(pod: key.name, level: warn, violations: warned)]
    }
}
