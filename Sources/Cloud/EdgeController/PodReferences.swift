import CloudHub
import KubeModel

/// The ConfigMaps and Secrets a pod uses, as kubelet resolves them: volumes (`configMap`,
/// `secret`, and the sources of `projected` volumes), `env[].valueFrom` of every container
/// and init container, and `envFrom[]`. Image pull secrets count as Secrets the pod uses.
public enum PodReferences {
    /// The keys of the ConfigMaps and Secrets `pod` refers to, in its namespace.
    public static func of(_ pod: JSONValue) -> Set<EdgeObjectKey> {
        let namespace = pod[path: ["metadata", "namespace"]]?.stringValue.flatMap { $0.isEmpty ? nil : $0 } ?? "default"
        var keys = Set<EdgeObjectKey>()
        func add(_ type: String, _ name: JSONValue?) {
            guard let name = name?.stringValue, !name.isEmpty else { return }
            keys.insert(EdgeObjectKey(kind: type, namespace: namespace, name: name))
        }
        for volume in pod[path: ["spec", "volumes"]].elements {
            add("configmap", volume[path: ["configMap", "name"]])
            add("secret", volume[path: ["secret", "secretName"]])
            for source in volume[path: ["projected", "sources"]].elements {
                add("configmap", source[path: ["configMap", "name"]])
                add("secret", source[path: ["secret", "name"]])
            }
        }
        let containers = pod[path: ["spec", "containers"]].elements + pod[path: ["spec", "initContainers"]].elements
        for container in containers {
            for variable in container["env"].elements {
                add("configmap", variable[path: ["valueFrom", "configMapKeyRef", "name"]])
                add("secret", variable[path: ["valueFrom", "secretKeyRef", "name"]])
            }
            for source in container["envFrom"].elements {
                add("configmap", source[path: ["configMapRef", "name"]])
                add("secret", source[path: ["secretRef", "name"]])
            }
        }
        for secret in pod[path: ["spec", "imagePullSecrets"]].elements { add("secret", secret["name"]) }
        return keys
    }

    /// The key of a pod, ConfigMap or Secret object.
    public static func key(of object: JSONValue, type: String) -> EdgeObjectKey? {
        guard let name = object[path: ["metadata", "name"]]?.stringValue else { return nil }
        let namespace = object[path: ["metadata", "namespace"]]?.stringValue.flatMap { $0.isEmpty ? nil : $0 } ?? "default"
        return EdgeObjectKey(kind: type, namespace: namespace, name: name)
    }
}
