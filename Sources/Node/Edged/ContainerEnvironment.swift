import KubeModel

/// Where a pod's ConfigMaps and Secrets come from (on the edge: MetaManager's store, so pods
/// start while the cloud is away).
public protocol PodResourceSource: Sendable {
    func configMap(namespace: String, name: String) async -> Kube.ConfigMap?
    func secret(namespace: String, name: String) async -> Kube.Secret?
}

/// A container's environment as kubelet builds it: `envFrom` sources first (ConfigMaps and
/// Secrets, with their `prefix`), then `env` in order, each `value` expanding `$(NAME)` of the
/// variables before it (`$$` is a literal `$`), `valueFrom` reading a ConfigMap or Secret key
/// or a pod field. A missing source or key that is not `optional` is a
/// `CreateContainerConfigError` naming it.
enum ContainerEnvironment {
    static let defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

    static func resolve(_ container: Kube.Container, pod: Kube.Pod, source: (any PodResourceSource)?) async throws(ContainerRuntimeError) -> [String: String] {
        var environment = ["PATH": defaultPath, "HOSTNAME": pod.name]
        let namespace = pod.namespace.isEmpty ? "default" : pod.namespace
        for from in container.json["envFrom"]?.arrayValue ?? [] {
            let prefix = from["prefix"]?.stringValue ?? ""
            if let reference = from["configMapRef"] {
                let name = reference["name"]?.stringValue ?? ""
                guard let map = await source?.configMap(namespace: namespace, name: name) else {
                    if reference["optional"] == .bool(true) { continue }
                    throw failure("configmap \"\(name)\" not found")
                }
                for (key, value) in map.data where isValidName(prefix + key) { environment[prefix + key] = value }
            } else if let reference = from["secretRef"] {
                let name = reference["name"]?.stringValue ?? ""
                guard let secret = await source?.secret(namespace: namespace, name: name) else {
                    if reference["optional"] == .bool(true) { continue }
                    throw failure("secret \"\(name)\" not found")
                }
                for (key, value) in secret.data where isValidName(prefix + key) { environment[prefix + key] = String(decoding: value, as: UTF8.self) }
            }
        }
        for variable in container.json["env"]?.arrayValue ?? [] {
            guard let name = variable["name"]?.stringValue, !name.isEmpty else { continue }
            if let value = variable["value"]?.stringValue {
                environment[name] = expand(value, with: environment)
            } else if let from = variable["valueFrom"] {
                if let value = try await valueFrom(from, pod: pod, namespace: namespace, source: source) { environment[name] = value }
            } else {
                environment[name] = ""
            }
        }
        return environment
    }

    private static func valueFrom(_ from: JSONValue, pod: Kube.Pod, namespace: String, source: (any PodResourceSource)?) async throws(ContainerRuntimeError) -> String? {
        if let reference = from["configMapKeyRef"] {
            let (name, key, optional) = (reference["name"]?.stringValue ?? "", reference["key"]?.stringValue ?? "", reference["optional"] == .bool(true))
            guard let map = await source?.configMap(namespace: namespace, name: name) else {
                if optional { return nil }
                throw failure("configmap \"\(name)\" not found")
            }
            guard let value = map.data[key] else {
                if optional { return nil }
                throw failure("couldn't find key \(key) in ConfigMap \(namespace)/\(name)")
            }
            return value
        }
        if let reference = from["secretKeyRef"] {
            let (name, key, optional) = (reference["name"]?.stringValue ?? "", reference["key"]?.stringValue ?? "", reference["optional"] == .bool(true))
            guard let secret = await source?.secret(namespace: namespace, name: name) else {
                if optional { return nil }
                throw failure("secret \"\(name)\" not found")
            }
            guard let value = secret.data[key] else {
                if optional { return nil }
                throw failure("couldn't find key \(key) in Secret \(namespace)/\(name)")
            }
            return String(decoding: value, as: UTF8.self)
        }
        if let path = from[path: ["fieldRef", "fieldPath"]]?.stringValue {
            return try fieldValue(path, pod: pod, namespace: namespace)
        }
        throw failure("valueFrom needs configMapKeyRef, secretKeyRef or fieldRef (resourceFieldRef is not supported)")
    }

    /// A pod field as the downward API gives it (`metadata.name`, `metadata.labels['app']`,
    /// `spec.nodeName`, `status.podIP`, …); with `wholeMaps`, `metadata.labels` and
    /// `metadata.annotations` too, as `key="value"` lines in key order (volumes only).
    static func fieldValue(_ path: String, pod: Kube.Pod, namespace: String, wholeMaps: Bool = false) throws(ContainerRuntimeError) -> String {
        switch path {
        case "metadata.name": return pod.name
        case "metadata.namespace": return namespace
        case "metadata.uid": return pod.uid ?? ""
        case "spec.nodeName": return pod.nodeName
        case "spec.serviceAccountName": return pod.json[path: ["spec", "serviceAccountName"]]?.stringValue ?? ""
        case "status.podIP", "status.hostIP": return pod.json[path: ["status", path == "status.podIP" ? "podIP" : "hostIP"]]?.stringValue ?? ""
        case "metadata.labels" where wholeMaps, "metadata.annotations" where wholeMaps:
            let map = path == "metadata.labels" ? pod.labels : pod.annotations
            return map.sorted { $0.key < $1.key }.map { "\($0.key)=\"\($0.value)\"" }.joined(separator: "\n")
        default:
            for (prefix, map) in [("metadata.labels['", pod.labels), ("metadata.annotations['", pod.annotations)]
            where path.hasPrefix(prefix) && path.hasSuffix("']") {
                return map[String(path.dropFirst(prefix.count).dropLast(2))] ?? ""
            }
            throw failure("the field path \(path) is not supported")
        }
    }

    /// `$(NAME)` replaced by NAME's value when defined (left as written otherwise); `$$(…)` is
    /// the literal `$(…)`.
    static func expand(_ value: String, with environment: [String: String]) -> String {
        var output = ""
        var rest = Substring(value)
        while let dollar = rest.firstIndex(of: "$") {
            output += rest[..<dollar]
            let after = rest.index(after: dollar)
            if after < rest.endIndex, rest[after] == "$" {
                output += "$"
                rest = rest[rest.index(after: after)...]
            } else if after < rest.endIndex, rest[after] == "(", let close = rest[after...].firstIndex(of: ")") {
                let name = String(rest[rest.index(after: after)..<close])
                output += environment[name] ?? "$(\(name))"
                rest = rest[rest.index(after: close)...]
            } else {
                output += "$"
                rest = rest[after...]
            }
        }
        return output + rest
    }

    /// A C identifier (what kubelet accepts from `envFrom`).
    private static func isValidName(_ name: String) -> Bool {
        guard let first = name.unicodeScalars.first, first == "_" || (first.isASCII && first.properties.isAlphabetic) else { return false }
        return name.unicodeScalars.allSatisfy { $0 == "_" || ($0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0))) }
    }

    private static func failure(_ message: String) -> ContainerRuntimeError {
        ContainerRuntimeError(reason: "CreateContainerConfigError", message: message)
    }
}
