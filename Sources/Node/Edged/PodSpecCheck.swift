import KubeModel

/// What makes a pod spec impossible to run at all (the API server would have refused it; an
/// edge must not trust that it did). Problems of one container (a missing command, an unknown
/// volume) are that container's waiting reason instead, so the rest of the pod still runs.
enum PodSpecCheck {
    static func problems(of pod: Kube.Pod) -> [String] {
        var problems: [String] = []
        if pod.containers.isEmpty { problems.append("the pod has no containers") }
        if let grace = pod.json[path: ["spec", "terminationGracePeriodSeconds"]]?.int64Value, grace < 0 {
            problems.append("terminationGracePeriodSeconds must not be negative (it is \(grace))")
        }
        if !["Always", "OnFailure", "Never"].contains(pod.restartPolicy) {
            problems.append("restartPolicy \(pod.restartPolicy) is not Always, OnFailure or Never")
        }
        var names = Set<String>()
        for container in pod.initContainers + pod.containers {
            if container.name.isEmpty { problems.append("a container has no name") }
            else if !names.insert(container.name).inserted { problems.append("container name \(container.name) is used twice") }
        }
        var volumes = Set<String>()
        for volume in pod.json[path: ["spec", "volumes"]].elements {
            let name = volume["name"]?.stringValue ?? ""
            if name.isEmpty { problems.append("a volume has no name") }
            else if !volumes.insert(name).inserted { problems.append("volume name \(name) is used twice") }
        }
        return problems
    }
}
