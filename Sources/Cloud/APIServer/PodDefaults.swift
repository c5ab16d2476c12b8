import KubeModel

/// What the Kubernetes API server fills in on a new Pod, so that kubectl and the edge see the
/// same object they would see from a cluster: the usual spec defaults (restart policy, grace
/// period, DNS policy, scheduler, each container's pull policy, termination message and port
/// protocol) where absent, and a status of `Pending` with the pod's QoS class (any status the
/// client sent is replaced, as there).
enum PodDefaults {
    static func onCreate(_ pod: JSONValue) -> JSONValue {
        var pod = specDefaulted(pod)
        pod["status"] = .object(JSONObject([("phase", .string("Pending")), ("qosClass", .string(qosClass(of: pod)))]))
        return pod
    }

    /// A pod (or a workload's pod template) with its spec's defaults filled in.
    static func specDefaulted(_ pod: JSONValue) -> JSONValue {
        var pod = pod
        let defaults: [(String, JSONValue)] = [
            ("restartPolicy", .string("Always")), ("terminationGracePeriodSeconds", .integer(30)), ("dnsPolicy", .string("ClusterFirst")),
            ("schedulerName", .string("default-scheduler")), ("enableServiceLinks", .bool(true)),
        ]
        for (field, value) in defaults where pod[path: ["spec", field]] == nil { pod.set(value, at: ["spec", field]) }
        for list in ["initContainers", "containers"] {
            guard let containers = pod[path: ["spec", list]]?.arrayValue else { continue }
            pod.set(.array(containers.map(defaulted)), at: ["spec", list])
        }
        return pod
    }

    private static func defaulted(_ container: JSONValue) -> JSONValue {
        var container = container
        if container["imagePullPolicy"] == nil {
            let image = container["image"]?.stringValue ?? ""
            let tag = image.split(separator: "/").last.flatMap { $0.split(separator: ":", maxSplits: 1).dropFirst().first }
            let pinned = image.contains("@") || (tag != nil && tag != "latest")
            container["imagePullPolicy"] = .string(pinned ? "IfNotPresent" : "Always")
        }
        if container["terminationMessagePath"] == nil { container["terminationMessagePath"] = .string("/dev/termination-log") }
        if container["terminationMessagePolicy"] == nil { container["terminationMessagePolicy"] = .string("File") }
        if let ports = container["ports"]?.arrayValue {
            container["ports"] = .array(ports.map { port in
                var port = port
                if port["protocol"] == nil { port["protocol"] = .string("TCP") }
                return port
            })
        }
        return container
    }

    /// `BestEffort` without any request or limit, `Guaranteed` when every container limits CPU
    /// and memory and requests the same (or nothing, which defaults to the limit), `Burstable`
    /// otherwise.
    static func qosClass(of pod: JSONValue) -> String {
        let containers = (pod[path: ["spec", "initContainers"]]?.arrayValue ?? []) + (pod[path: ["spec", "containers"]]?.arrayValue ?? [])
        var anySet = false
        var guaranteed = true
        for container in containers {
            let requests = container[path: ["resources", "requests"]]?.objectValue ?? JSONObject()
            let limits = container[path: ["resources", "limits"]]?.objectValue ?? JSONObject()
            if !requests.isEmpty || !limits.isEmpty { anySet = true }
            for resource in ["cpu", "memory"] {
                guard let limit = limits[resource] else {
                    guaranteed = false
                    continue
                }
                if let request = requests[resource], request != limit { guaranteed = false }
            }
        }
        if !anySet { return "BestEffort" }
        return guaranteed ? "Guaranteed" : "Burstable"
    }
}
