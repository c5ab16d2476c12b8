import KubeModel

/// Pod Security admission (the Pod Security Standards, `latest`): a pod is checked against its
/// namespace's `pod-security.kubernetes.io/enforce` level (refused, 403) and `warn` level
/// (`Warning` headers), with kube-apiserver's messages. A namespace without an `enforce` label
/// is `baseline` unless it is one of the cluster's own (``systemNamespaces``), which are
/// `privileged`: on this server user namespaces are safe by default.
enum PodSecurity {
    enum Level: String, Comparable {
        case privileged, baseline, restricted

        static func < (lhs: Level, rhs: Level) -> Bool { lhs.order < rhs.order }
        private var order: Int { self == .privileged ? 0 : self == .baseline ? 1 : 2 }
    }

    /// Namespaces whose pods are the cluster's own and are not restricted by default.
    static let systemNamespaces: Set<String> = ["kube-system", "kube-public", "kube-node-lease", "kubeedge"]

    /// The levels a namespace sets: `enforce` (default as above), `warn` and `audit` (none by default).
    static func levels(of namespace: JSONValue?, name: String) -> (enforce: Level, warn: Level?, audit: Level?) {
        let labels = namespace?[path: ["metadata", "labels"]]
        let enforce = labels?["pod-security.kubernetes.io/enforce"]?.stringValue.flatMap(Level.init(rawValue:))
            ?? (systemNamespaces.contains(name) ? .privileged : .baseline)
        let warn = labels?["pod-security.kubernetes.io/warn"]?.stringValue.flatMap(Level.init(rawValue:))
        let audit = labels?["pod-security.kubernetes.io/audit"]?.stringValue.flatMap(Level.init(rawValue:))
        return (enforce, warn, audit)
    }

    /// What `pod` does that `level` forbids, as kube's checks word it, sorted by check; empty
    /// when it meets the level.
    static func violations(of pod: JSONValue, level: Level) -> [String] {
        guard level != .privileged else { return [] }
        let spec = pod["spec"] ?? .object(JSONObject())
        let podContext = spec["securityContext"]
        var containers: [(name: String, value: JSONValue)] = []
        for list in ["initContainers", "containers", "ephemeralContainers"] {
            for container in spec[list]?.arrayValue ?? [] { containers.append((container["name"]?.stringValue ?? "", container)) }
        }
        func context(_ container: JSONValue, _ key: String) -> JSONValue? { container[path: ["securityContext", key]] }
        var found: [(id: String, text: String)] = []
        func add(_ id: String, _ reason: String, _ details: [String]) {
            let details = details.filter { !$0.isEmpty }
            guard !details.isEmpty else { return }
            found.append((id, "\(reason) (\(details.joined(separator: "; ")))"))
        }

        // Baseline.
        let hostNamespaces = ["hostNetwork", "hostPID", "hostIPC"].filter { spec[$0] == .bool(true) }.map { "\($0)=true" }
        if !hostNamespaces.isEmpty { found.append(("hostNamespaces", "host namespaces (\(hostNamespaces.joined(separator: ", ")))")) }
        let privileged = containers.filter { context($0.value, "privileged") == .bool(true) }.map(\.name)
        add("privileged", "privileged", [must(privileged, "must not set securityContext.privileged=true")])
        let volumes = spec["volumes"]?.arrayValue ?? []
        let hostPaths = volumes.filter { $0["hostPath"] != nil }.compactMap { $0["name"]?.stringValue }
        add("hostPathVolumes", "hostPath volumes", [hostPaths.isEmpty ? "" : plural(hostPaths, "volume", "volumes")])
        var portContainers: [String] = []
        var ports: [String] = []
        for (name, container) in containers {
            let used = (container["ports"]?.arrayValue ?? []).compactMap { $0["hostPort"]?.int64Value }.filter { $0 != 0 }
            if !used.isEmpty {
                portContainers.append(name)
                ports += used.map(String.init)
            }
        }
        if !portContainers.isEmpty {
            let verb = portContainers.count == 1 ? "uses" : "use"
            add("hostPorts", "hostPort", ["\(plural(portContainers, "container", "containers")) \(verb) \(ports.count == 1 ? "hostPort" : "hostPorts") \(ports.joined(separator: ", "))"])
        }
        let procMounts = containers.filter { (context($0.value, "procMount")?.stringValue ?? "Default") != "Default" }
        add("procMount", "procMount", procMounts.map { "container \"\($0.name)\" must not set securityContext.procMount to \"\(context($0.value, "procMount")?.stringValue ?? "")\"" })
        let sysctls = (podContext?["sysctls"]?.arrayValue ?? []).compactMap { $0["name"]?.stringValue }.filter { !safeSysctls.contains($0) }
        add("sysctls", "forbidden sysctls", [sysctls.joined(separator: ", ")])
        let baselineAllowed: Set<String> = ["AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE",
                                            "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"]
        if level == .baseline {
            var adding: [String] = []
            var added: [String] = []
            for (name, container) in containers {
                let extra = (context(container, "capabilities")?["add"]?.arrayValue ?? []).compactMap(\.stringValue).filter { !baselineAllowed.contains($0) }
                if !extra.isEmpty {
                    adding.append(name)
                    for capability in extra where !added.contains(capability) { added.append(capability) }
                }
            }
            add("capabilities_baseline", "non-default capabilities",
                [must(adding, "must not include \(added.map { "\"\($0)\"" }.joined(separator: ", ")) in securityContext.capabilities.add")])
            var seccomp: [String] = []
            if podContext?[path: ["seccompProfile", "type"]] == .string("Unconfined") { seccomp.append("pod must not set securityContext.seccompProfile.type to \"Unconfined\"") }
            let unconfined = containers.filter { context($0.value, "seccompProfile")?["type"] == .string("Unconfined") }.map(\.name)
            seccomp.append(must(unconfined, "must not set securityContext.seccompProfile.type to \"Unconfined\""))
            add("seccompProfile_baseline", "seccompProfile", seccomp)
        }

        // Restricted.
        if level == .restricted {
            let allowedVolumes: Set<String> = ["configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret"]
            var restrictedNames: [String] = []
            var restrictedTypes: [String] = []
            for volume in volumes {
                guard let type = volume.objectValue?.keys.first(where: { $0 != "name" }), !allowedVolumes.contains(type) else { continue }
                restrictedNames.append(volume["name"]?.stringValue ?? "")
                if !restrictedTypes.contains(type) { restrictedTypes.append(type) }
            }
            if !restrictedNames.isEmpty {
                let verb = restrictedNames.count == 1 ? "uses restricted volume type" : "use restricted volume types"
                add("restrictedVolumes", "restricted volume types",
                    ["\(plural(restrictedNames, "volume", "volumes")) \(verb) \(restrictedTypes.map { "\"\($0)\"" }.joined(separator: ", "))"])
            }
            let escalating = containers.filter { context($0.value, "allowPrivilegeEscalation") != .bool(false) }.map(\.name)
            add("allowPrivilegeEscalation", "allowPrivilegeEscalation != false", [must(escalating, "must set securityContext.allowPrivilegeEscalation=false")])
            let podNonRoot = podContext?["runAsNonRoot"]
            let rootCapable = containers.filter { (context($0.value, "runAsNonRoot") ?? podNonRoot) != .bool(true) }.map(\.name)
            if podNonRoot == .bool(false) {
                add("runAsNonRoot", "runAsNonRoot != true", ["pod must not set securityContext.runAsNonRoot=false"])
            } else if !rootCapable.isEmpty {
                add("runAsNonRoot", "runAsNonRoot != true", ["pod or \(plural(rootCapable, "container", "containers")) must set securityContext.runAsNonRoot=true"])
            }
            var rootUser: [String] = []
            if podContext?["runAsUser"]?.int64Value == 0 { rootUser.append("pod must not set runAsUser=0") }
            rootUser.append(must(containers.filter { context($0.value, "runAsUser")?.int64Value == 0 }.map(\.name), "must not set runAsUser=0"))
            add("runAsUser", "runAsUser=0", rootUser)
            let podSeccomp = podContext?[path: ["seccompProfile", "type"]]?.stringValue
            var seccomp: [String] = []
            if podSeccomp == "Unconfined" { seccomp.append("pod must not set securityContext.seccompProfile.type to \"Unconfined\"") }
            let badSeccomp = containers.filter {
                let type = context($0.value, "seccompProfile")?["type"]?.stringValue ?? podSeccomp
                return type != "RuntimeDefault" && type != "Localhost"
            }.map(\.name)
            if !badSeccomp.isEmpty {
                seccomp.append((podSeccomp == nil ? "pod or " : "") + must(badSeccomp, "must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\""))
            }
            add("seccompProfile_restricted", "seccompProfile", seccomp)
            let notDropping = containers.filter { !(context($0.value, "capabilities")?["drop"]?.arrayValue ?? []).contains(.string("ALL")) }.map(\.name)
            var adding: [String] = []
            var added: [String] = []
            for (name, container) in containers {
                let extra = (context(container, "capabilities")?["add"]?.arrayValue ?? []).compactMap(\.stringValue).filter { $0 != "NET_BIND_SERVICE" }
                if !extra.isEmpty {
                    adding.append(name)
                    for capability in extra where !added.contains(capability) { added.append(capability) }
                }
            }
            add("capabilities_restricted", "unrestricted capabilities",
                [must(notDropping, "must set securityContext.capabilities.drop=[\"ALL\"]"),
                 must(adding, "must not include \(added.map { "\"\($0)\"" }.joined(separator: ", ")) in securityContext.capabilities.add")])
        }
        return found.sorted { $0.id < $1.id }.map(\.text)
    }

    /// `container "a" must …` / `containers "a", "b" must …`; empty for no containers.
    private static func must(_ names: [String], _ rule: String) -> String {
        names.isEmpty ? "" : plural(names, "container", "containers") + " " + rule
    }

    private static func plural(_ names: [String], _ one: String, _ many: String) -> String {
        (names.count == 1 ? one : many) + " " + names.map { "\"\($0)\"" }.joined(separator: ", ")
    }

    /// The sysctls baseline allows (Kubernetes' safe set).
    private static let safeSysctls: Set<String> = [
        "kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start", "net.ipv4.tcp_syncookies",
        "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports", "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout",
        "net.ipv4.tcp_keepalive_intvl", "net.ipv4.tcp_keepalive_probes",
    ]

    /// kube-apiserver's refusal of a pod that breaks its namespace's enforced level.
    static func forbidden(pod name: String, level: Level, violations: [String]) -> APIError {
        APIError(code: 403, reason: "Forbidden",
                 message: "pods \"\(name)\" is forbidden: violates PodSecurity \"\(level.rawValue):latest\": \(violations.joined(separator: ", "))",
                 details: .object(JSONObject([("name", .string(name)), ("kind", .string("pods"))])))
    }

    /// The warning of a pod that breaks its namespace's `warn` level.
    static func warning(pod name: String, level: Level, violations: [String]) -> String {
        "would violate PodSecurity \"\(level.rawValue):latest\": \(violations.joined(separator: ", "))"
    }
}
