import Foundation
import KubeModel

/// `meta.k8s.io/v1` Table output, which `kubectl get` asks for (`as=Table`) to print its usual
/// columns: pods (READY, STATUS, RESTARTS), nodes (STATUS, ROLES, VERSION), configmaps and
/// secrets (DATA), namespaces (STATUS); other kinds get NAME and AGE. Wide columns have priority 1.
enum APITable {
    private struct Column {
        var name: String
        var type: String
        var priority: Int
        var cell: (JSONValue) -> JSONValue
    }

    /// The Table for `objects` of `resource`; a custom resource's `printerColumns` (its
    /// version's `additionalPrinterColumns`) replace the Age column, as for CRDs in Kubernetes.
    static func table(_ objects: [JSONValue], resource: APIResource, revision: Int64?, printerColumns: [JSONValue]? = nil,
                      now: Date = Date()) -> JSONValue {
        let name = Column(name: "Name", type: "string", priority: 0) { .string($0[path: ["metadata", "name"]]?.stringValue ?? "") }
        let columns: [Column]
        if let printerColumns, !printerColumns.isEmpty {
            columns = [name] + printerColumns.compactMap { printerColumn(of: $0, now: now) }
        } else {
            columns = [name] + self.columns(for: resource.kind) + [Column(name: "Age", type: "string", priority: 0) { .string(age(of: $0, now: now)) }]
                + wideColumns(for: resource.kind)
        }
        let definitions = columns.map { column in
            JSONValue.object(JSONObject([
                ("name", .string(column.name)), ("type", .string(column.type)), ("format", .string(column.name == "Name" ? "name" : "")),
                ("description", .string("")), ("priority", .integer(column.priority)),
            ]))
        }
        let rows = objects.map { object in
            JSONValue.object(JSONObject([
                ("cells", .array(columns.map { $0.cell(object) })),
                ("object", .object(JSONObject([
                    ("kind", .string("PartialObjectMetadata")), ("apiVersion", .string("meta.k8s.io/v1")),
                    ("metadata", object["metadata"] ?? .object(JSONObject())),
                ]))),
            ]))
        }
        var metadata = JSONObject()
        if let revision { metadata["resourceVersion"] = .string(String(revision)) }
        return .object(JSONObject([
            ("kind", .string("Table")), ("apiVersion", .string("meta.k8s.io/v1")), ("metadata", .object(metadata)),
            ("columnDefinitions", .array(definitions)), ("rows", .array(rows)),
        ]))
    }

    private static func columns(for kind: String) -> [Column] {
        switch kind {
        case "Pod":
            return [
                Column(name: "Ready", type: "string", priority: 0) { pod in
                    let statuses = pod[path: ["status", "containerStatuses"]]?.arrayValue ?? []
                    let ready = statuses.filter { $0["ready"]?.boolValue == true }.count
                    return .string("\(ready)/\(pod[path: ["spec", "containers"]]?.arrayValue?.count ?? 0)")
                },
                Column(name: "Status", type: "string", priority: 0) { pod in
                    // As kubectl's printer words it: the pod's reason or phase, a container's
                    // waiting or terminated reason over that, and Terminating once deleted.
                    var status = pod[path: ["status", "reason"]]?.stringValue ?? pod[path: ["status", "phase"]]?.stringValue ?? "Pending"
                    for container in (pod[path: ["status", "containerStatuses"]]?.arrayValue ?? []).reversed() {
                        if let reason = container[path: ["state", "waiting", "reason"]]?.stringValue, !reason.isEmpty {
                            status = reason
                        } else if let reason = container[path: ["state", "terminated", "reason"]]?.stringValue, !reason.isEmpty {
                            status = reason
                        }
                    }
                    if pod[path: ["metadata", "deletionTimestamp"]] != nil {
                        status = pod[path: ["status", "reason"]]?.stringValue == "NodeLost" ? "Unknown" : "Terminating"
                    }
                    return .string(status)
                },
                Column(name: "Restarts", type: "integer", priority: 0) { pod in
                    .integer((pod[path: ["status", "containerStatuses"]]?.arrayValue ?? []).reduce(Int64(0)) { $0 + ($1["restartCount"]?.int64Value ?? 0) })
                },
            ]
        case "Node":
            return [
                Column(name: "Status", type: "string", priority: 0) { node in
                    let ready = (node[path: ["status", "conditions"]]?.arrayValue ?? []).first { $0["type"]?.stringValue == "Ready" }
                    // As Kubernetes prints it: any verdict but True (False, Unknown) is NotReady;
                    // no Ready condition at all is Unknown.
                    let status = switch ready?["status"]?.stringValue {
                    case "True"?: "Ready"
                    case nil: "Unknown"
                    default: "NotReady"
                    }
                    return .string(node[path: ["spec", "unschedulable"]]?.boolValue == true ? "\(status),SchedulingDisabled" : status)
                },
                Column(name: "Roles", type: "string", priority: 0) { node in
                    let prefix = "node-role.kubernetes.io/"
                    let roles = (node[path: ["metadata", "labels"]]?.objectValue?.keys ?? []).filter { $0.hasPrefix(prefix) }.map { String($0.dropFirst(prefix.count)) }.sorted()
                    return .string(roles.isEmpty ? "<none>" : roles.joined(separator: ","))
                },
            ]
        case "ConfigMap":
            return [Column(name: "Data", type: "integer", priority: 0) { .integer(count($0, "data") + count($0, "binaryData")) }]
        case "Secret":
            return [
                Column(name: "Type", type: "string", priority: 0) { .string($0["type"]?.stringValue ?? "Opaque") },
                Column(name: "Data", type: "integer", priority: 0) { .integer(count($0, "data")) },
            ]
        case "Namespace":
            return [Column(name: "Status", type: "string", priority: 0) { .string($0[path: ["status", "phase"]]?.stringValue ?? "Active") }]
        case "Deployment":
            return [
                Column(name: "Ready", type: "string", priority: 0) { .string("\(int($0, "status", "readyReplicas"))/\(int($0, "spec", "replicas"))") },
                Column(name: "Up-to-date", type: "integer", priority: 0) { .integer(int($0, "status", "updatedReplicas")) },
                Column(name: "Available", type: "integer", priority: 0) { .integer(int($0, "status", "availableReplicas")) },
            ]
        case "ReplicaSet":
            return [
                Column(name: "Desired", type: "integer", priority: 0) { .integer(int($0, "spec", "replicas")) },
                Column(name: "Current", type: "integer", priority: 0) { .integer(int($0, "status", "replicas")) },
                Column(name: "Ready", type: "integer", priority: 0) { .integer(int($0, "status", "readyReplicas")) },
            ]
        case "DaemonSet":
            return [
                Column(name: "Desired", type: "integer", priority: 0) { .integer(int($0, "status", "desiredNumberScheduled")) },
                Column(name: "Current", type: "integer", priority: 0) { .integer(int($0, "status", "currentNumberScheduled")) },
                Column(name: "Ready", type: "integer", priority: 0) { .integer(int($0, "status", "numberReady")) },
                Column(name: "Up-to-date", type: "integer", priority: 0) { .integer(int($0, "status", "updatedNumberScheduled")) },
                Column(name: "Available", type: "integer", priority: 0) { .integer(int($0, "status", "numberAvailable")) },
                Column(name: "Node Selector", type: "string", priority: 0) { daemonSet in
                    let selector = (daemonSet[path: ["spec", "template", "spec", "nodeSelector"]]?.objectValue ?? JSONObject())
                        .sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value.stringValue ?? "")" }
                    return .string(selector.isEmpty ? "<none>" : selector.joined(separator: ","))
                },
            ]
        case "Job":
            return [
                Column(name: "Status", type: "string", priority: 0) { job in
                    let conditions = (job[path: ["status", "conditions"]]?.arrayValue ?? []).filter { $0["status"]?.stringValue == "True" }
                    if conditions.contains(where: { $0["type"]?.stringValue == "Complete" }) { return .string("Complete") }
                    if conditions.contains(where: { $0["type"]?.stringValue == "Failed" }) { return .string("Failed") }
                    return .string(job[path: ["spec", "suspend"]]?.boolValue == true ? "Suspended" : "Running")
                },
                Column(name: "Completions", type: "string", priority: 0) { job in
                    let completions = job[path: ["spec", "completions"]]?.int64Value.map(String.init) ?? "1"
                    return .string("\(int(job, "status", "succeeded"))/\(completions)")
                },
            ]
        case "CronJob":
            return [
                Column(name: "Schedule", type: "string", priority: 0) { .string($0[path: ["spec", "schedule"]]?.stringValue ?? "") },
                Column(name: "Timezone", type: "string", priority: 0) { .string($0[path: ["spec", "timeZone"]]?.stringValue ?? "<none>") },
                Column(name: "Suspend", type: "boolean", priority: 0) { .bool($0[path: ["spec", "suspend"]]?.boolValue ?? false) },
                Column(name: "Active", type: "integer", priority: 0) { .integer(Int64($0[path: ["status", "active"]]?.arrayValue?.count ?? 0)) },
                Column(name: "Last Schedule", type: "string", priority: 0) {
                    .string(elapsed(since: $0[path: ["status", "lastScheduleTime"]]?.stringValue, now: Date()) ?? "<none>")
                },
            ]
        default:
            return []
        }
    }

    /// An integer field of `object` (`section.field`), 0 when absent.
    private static func int(_ object: JSONValue, _ section: String, _ field: String) -> Int64 {
        object[path: [section, field]]?.int64Value ?? 0
    }

    private static func wideColumns(for kind: String) -> [Column] {
        switch kind {
        case "Pod":
            return [
                Column(name: "IP", type: "string", priority: 1) { .string($0[path: ["status", "podIP"]]?.stringValue ?? "<none>") },
                Column(name: "Node", type: "string", priority: 1) { .string($0[path: ["spec", "nodeName"]]?.stringValue ?? "<none>") },
            ]
        case "Node":
            return [
                Column(name: "Version", type: "string", priority: 0) { .string($0[path: ["status", "nodeInfo", "kubeletVersion"]]?.stringValue ?? "") },
                Column(name: "Internal-IP", type: "string", priority: 1) { node in
                    let address = (node[path: ["status", "addresses"]]?.arrayValue ?? []).first { $0["type"]?.stringValue == "InternalIP" }
                    return .string(address?["address"]?.stringValue ?? "<none>")
                },
                Column(name: "OS-Image", type: "string", priority: 1) { .string($0[path: ["status", "nodeInfo", "osImage"]]?.stringValue ?? "<unknown>") },
            ]
        default:
            return []
        }
    }

    private static func count(_ object: JSONValue, _ field: String) -> Int64 { Int64(object[field]?.objectValue?.count ?? 0) }

    /// `kubectl`'s short age: 45s, 3m20s, 2h15m, 3d4h, 400d.
    /// A CRD's printer column: its name, type and priority, and each cell the value at its
    /// `jsonPath` (`.spec.size`, `.status.conditions[0].type`); `date` columns show an age.
    private static func printerColumn(of definition: JSONValue, now: Date) -> Column? {
        guard let name = definition["name"]?.stringValue, let path = definition["jsonPath"]?.stringValue else { return nil }
        let type = definition["type"]?.stringValue ?? "string"
        let steps = jsonPathSteps(path)
        return Column(name: name, type: type, priority: Int(definition["priority"]?.int64Value ?? 0)) { object in
            var value: JSONValue? = object
            for step in steps {
                switch step {
                case .member(let key): value = value?[key]
                case .index(let index): value = value?.arrayValue.flatMap { index < $0.count ? $0[index] : nil }
                case .filter(let key, let wanted): value = value?.arrayValue?.first { $0[key]?.stringValue == wanted }
                }
            }
            guard let value else { return .null }
            if type == "date", case .string(let text) = value {
                return .string(age(of: .object(JSONObject([("metadata", .object(JSONObject([("creationTimestamp", .string(text))])))])), now: now))
            }
            return value
        }
    }

    private enum PathStep {
        case member(String), index(Int)
        /// `[?(@.key=="value")]`: the first item whose `key` is `value`.
        case filter(key: String, value: String)
    }

    /// The JSONPath CRD printer columns use, as steps: `.a.b`, `[2]`, `[?(@.type=="Ready")]`.
    private static func jsonPathSteps(_ path: String) -> [PathStep] {
        var steps: [PathStep] = []
        var rest = Substring(path)
        while let first = rest.first {
            if first == "." {
                rest = rest.dropFirst()
                let name = rest.prefix { $0 != "." && $0 != "[" }
                if !name.isEmpty { steps.append(.member(String(name))) }
                rest = rest.dropFirst(name.count)
            } else if first == "[" {
                guard let end = rest.firstIndex(of: "]") else { break }
                let inside = rest[rest.index(after: rest.startIndex)..<end]
                if let index = Int(inside) {
                    steps.append(.index(index))
                } else if inside.hasPrefix("?(@."), inside.hasSuffix(")"), let equals = inside.range(of: "==") {
                    let key = inside[inside.index(inside.startIndex, offsetBy: 4)..<equals.lowerBound]
                    let value = inside[equals.upperBound..<inside.index(before: inside.endIndex)].trimmingCharacters(in: CharacterSet(charactersIn: "\"' "))
                    steps.append(.filter(key: String(key), value: value))
                }
                rest = rest[rest.index(after: end)...]
            } else {
                let name = rest.prefix { $0 != "." && $0 != "[" }
                steps.append(.member(String(name)))
                rest = rest.dropFirst(name.count)
            }
        }
        return steps
    }

    static func age(of object: JSONValue, now: Date) -> String {
        elapsed(since: object[path: ["metadata", "creationTimestamp"]]?.stringValue, now: now) ?? "<unknown>"
    }

    /// The time since an RFC 3339 instant, as kubectl's printers write it (`translateTimestampSince`).
    static func elapsed(since text: String?, now: Date) -> String? {
        guard let text, let created = try? Date(text, strategy: .iso8601) else { return nil }
        let seconds = max(0, Int(now.timeIntervalSince(created)))
        let minutes = seconds / 60
        let hours = minutes / 60
        switch seconds {
        case ..<120: return "\(seconds)s"
        case ..<600: return seconds % 60 == 0 ? "\(minutes)m" : "\(minutes)m\(seconds % 60)s"
        case ..<10_800: return "\(minutes)m"
        case ..<28_800: return minutes % 60 == 0 ? "\(hours)h" : "\(hours)h\(minutes % 60)m"
        case ..<172_800: return "\(hours)h"
        case ..<691_200: return hours % 24 == 0 ? "\(hours / 24)d" : "\(hours / 24)d\(hours % 24)h"
        default: return "\(hours / 24)d"
        }
    }
}
