import KubeModel

/// Service-account admission as kube-apiserver applies it to a new pod: the pod runs as
/// `spec.serviceAccountName` (`default` when unset), which must exist; unless the pod or the
/// account sets `automountServiceAccountToken: false`, the pod gets the projected volume
/// `kube-api-access-<5 characters>` (a token for the account, the cluster's `ca.crt` from the
/// `kube-root-ca.crt` ConfigMap, and the pod's namespace) mounted read-only at
/// ``mountPath`` in every container and init container that mounts nothing there itself.
enum ServiceAccountAdmission {
    /// Where the token, `ca.crt` and `namespace` appear in a container.
    static let mountPath = "/var/run/secrets/kubernetes.io/serviceaccount"
    /// The prefix of the volume's name.
    static let volumePrefix = "kube-api-access-"
    /// The token's requested life: kube-apiserver's 3607 s (an hour and 7 s, so that clients
    /// can tell an admission-made token from one they asked for).
    static let tokenExpirationSeconds: Int64 = 3607
    /// The characters of the volume's random suffix (Kubernetes' `utilrand.String`).
    private static let suffixAlphabet = Array("bcdfghjklmnpqrstvwxz2456789")

    /// The pod's service account name: `spec.serviceAccountName`, then the deprecated
    /// `spec.serviceAccount`, then `default`.
    static func accountName(of pod: JSONValue) -> String {
        for field in ["serviceAccountName", "serviceAccount"] {
            if let name = pod[path: ["spec", field]]?.stringValue, !name.isEmpty { return name }
        }
        return "default"
    }

    /// The refusal when the pod's account does not exist, in kube-apiserver's words.
    static func missingAccount(pod: String, namespace: String, account: String) -> APIError {
        APIError(code: 403, reason: "Forbidden",
                 message: "pods \"\(pod)\" is forbidden: error looking up service account \(namespace)/\(account): serviceaccount \"\(account)\" not found")
    }

    /// `pod` as admission leaves it, given its (existing) service account.
    static func admit(_ pod: JSONValue, account: JSONValue) -> JSONValue {
        var pod = pod
        let name = accountName(of: pod)
        pod.set(.string(name), at: ["spec", "serviceAccountName"])
        pod.set(.string(name), at: ["spec", "serviceAccount"])
        let automount = pod[path: ["spec", "automountServiceAccountToken"]] ?? account["automountServiceAccountToken"]
        guard automount != .bool(false) else { return pod }

        let volumes = pod[path: ["spec", "volumes"]]?.arrayValue ?? []
        let existing = volumes.compactMap { $0["name"]?.stringValue }.first { $0.hasPrefix(volumePrefix) }
        let volumeName = existing ?? volumePrefix + String((0..<5).map { _ in suffixAlphabet.randomElement()! })
        var mounted = false
        for list in ["initContainers", "containers"] {
            guard let containers = pod[path: ["spec", list]]?.arrayValue else { continue }
            pod.set(.array(containers.map { container in
                let mounts = container["volumeMounts"]?.arrayValue ?? []
                guard !mounts.contains(where: { $0["mountPath"]?.stringValue == mountPath }) else { return container }
                mounted = true
                var container = container
                container["volumeMounts"] = .array(mounts + [.object(JSONObject([
                    ("name", .string(volumeName)), ("readOnly", .bool(true)), ("mountPath", .string(mountPath)),
                ]))])
                return container
            }), at: ["spec", list])
        }
        if mounted, existing == nil { pod.set(.array(volumes + [volume(named: volumeName)]), at: ["spec", "volumes"]) }
        return pod
    }

    /// The projected volume kube-apiserver adds.
    static func volume(named name: String) -> JSONValue {
        .object(JSONObject([
            ("name", .string(name)),
            ("projected", .object(JSONObject([
                ("sources", .array([
                    .object(JSONObject([("serviceAccountToken", .object(JSONObject([
                        ("expirationSeconds", .integer(tokenExpirationSeconds)), ("path", .string("token")),
                    ])))])),
                    .object(JSONObject([("configMap", .object(JSONObject([
                        ("name", .string("kube-root-ca.crt")),
                        ("items", .array([.object(JSONObject([("key", .string("ca.crt")), ("path", .string("ca.crt"))]))])),
                    ])))])),
                    .object(JSONObject([("downwardAPI", .object(JSONObject([
                        ("items", .array([.object(JSONObject([
                            ("path", .string("namespace")),
                            ("fieldRef", .object(JSONObject([("apiVersion", .string("v1")), ("fieldPath", .string("metadata.namespace"))]))),
                        ]))])),
                    ])))])),
                ])),
                ("defaultMode", .integer(0o644)),
            ]))),
        ]))
    }
}
