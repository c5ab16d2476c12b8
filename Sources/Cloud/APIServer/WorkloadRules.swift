import Foundation
import KubeModel

/// What kube-apiserver fills in and checks on the workload kinds (apps/v1 Deployment,
/// ReplicaSet, DaemonSet; batch/v1 Job, CronJob) and on pods' affinity: the defaults of each
/// spec and its pod template, a Job's generated selector and labels, and the validation errors
/// users meet most, in kube's words (a selector that does not match the template's labels, an
/// empty selector, negative counts, a schedule that does not parse, an unknown operator).
enum WorkloadRules {
    /// The workload kinds' storage names.
    static let kinds: Set<String> = ["deployments.apps", "replicasets.apps", "daemonsets.apps", "jobs.batch", "cronjobs.batch"]

    // MARK: defaults

    /// `object` with its kind's defaults; a Job gets its selector and template labels from `uid`.
    static func defaulted(_ object: JSONValue, storageName: String, uid: String?) -> JSONValue {
        var object = object
        func setDefault(_ value: JSONValue, _ path: [String]) { if object[path: path] == nil { object.set(value, at: path) } }
        switch storageName {
        case "deployments.apps":
            setDefault(.integer(1), ["spec", "replicas"])
            setDefault(.string("RollingUpdate"), ["spec", "strategy", "type"])
            if object[path: ["spec", "strategy", "type"]]?.stringValue == "RollingUpdate" {
                setDefault(.string("25%"), ["spec", "strategy", "rollingUpdate", "maxUnavailable"])
                setDefault(.string("25%"), ["spec", "strategy", "rollingUpdate", "maxSurge"])
            }
            setDefault(.integer(10), ["spec", "revisionHistoryLimit"])
            setDefault(.integer(600), ["spec", "progressDeadlineSeconds"])
        case "replicasets.apps":
            setDefault(.integer(1), ["spec", "replicas"])
        case "daemonsets.apps":
            setDefault(.string("RollingUpdate"), ["spec", "updateStrategy", "type"])
            if object[path: ["spec", "updateStrategy", "type"]]?.stringValue == "RollingUpdate" {
                setDefault(.integer(1), ["spec", "updateStrategy", "rollingUpdate", "maxUnavailable"])
                setDefault(.integer(0), ["spec", "updateStrategy", "rollingUpdate", "maxSurge"])
            }
            setDefault(.integer(10), ["spec", "revisionHistoryLimit"])
        case "jobs.batch":
            if object[path: ["spec", "completions"]] == nil, object[path: ["spec", "parallelism"]] == nil {
                object.set(.integer(1), at: ["spec", "completions"])
            }
            setDefault(.integer(1), ["spec", "parallelism"])
            setDefault(.integer(6), ["spec", "backoffLimit"])
            setDefault(.string("NonIndexed"), ["spec", "completionMode"])
            setDefault(.bool(false), ["spec", "suspend"])
            // The generated selector: the Job's uid, in its template's labels too.
            if let uid, object[path: ["spec", "manualSelector"]]?.boolValue != true, object[path: ["spec", "selector"]] == nil {
                let name = object[path: ["metadata", "name"]] ?? .string("")
                object.set(.object(JSONObject([("matchLabels", .object(JSONObject([("batch.kubernetes.io/controller-uid", .string(uid))])))])),
                           at: ["spec", "selector"])
                for (label, value) in [("batch.kubernetes.io/controller-uid", JSONValue.string(uid)), ("batch.kubernetes.io/job-name", name),
                                       ("controller-uid", .string(uid)), ("job-name", name)] {
                    object.set(value, at: ["spec", "template", "metadata", "labels", label])
                }
            }
        case "cronjobs.batch":
            setDefault(.string("Allow"), ["spec", "concurrencyPolicy"])
            setDefault(.bool(false), ["spec", "suspend"])
            setDefault(.integer(3), ["spec", "successfulJobsHistoryLimit"])
            setDefault(.integer(1), ["spec", "failedJobsHistoryLimit"])
            if let template = object[path: ["spec", "jobTemplate"]] {
                var job = JSONValue.object(JSONObject([("spec", template["spec"] ?? .object(JSONObject()))]))
                job = defaulted(job, storageName: "jobs.batch", uid: nil)
                object.set(job["spec"], at: ["spec", "jobTemplate", "spec"])
            }
        default:
            return object
        }
        let templatePath = storageName == "cronjobs.batch" ? ["spec", "jobTemplate", "spec", "template"] : ["spec", "template"]
        if let template = object[path: templatePath] { object.set(PodDefaults.specDefaulted(template), at: templatePath) }
        return object
    }

    // MARK: validation

    /// What is wrong with a workload (or a pod's affinity), as kube's field errors; `old` is the
    /// stored object on an update (a selector may not change).
    static func errors(in object: JSONValue, storageName: String, old: JSONValue?) -> [StructuralSchema.FieldError] {
        var errors: [StructuralSchema.FieldError] = []
        func invalid(_ field: String, _ value: JSONValue, _ detail: String) {
            errors.append(.init(kind: .invalid, field: field, value: value, detail: detail))
        }
        func nonNegative(_ path: [String]) {
            if let value = object[path: path]?.int64Value, value < 0 {
                invalid(path.joined(separator: "."), .integer(value), "must be greater than or equal to 0")
            }
        }
        var templatePath = ["spec", "template"]
        switch storageName {
        case "deployments.apps", "replicasets.apps", "daemonsets.apps":
            if storageName != "daemonsets.apps" { nonNegative(["spec", "replicas"]) }
            nonNegative(["spec", "revisionHistoryLimit"])
            nonNegative(["spec", "minReadySeconds"])
            errors += selectorErrors(object, templatePath: templatePath, kind: storageName == "deployments.apps" ? "deployment" : nil)
            if let old, let before = old[path: ["spec", "selector"]], let after = object[path: ["spec", "selector"]], before != after {
                invalid("spec.selector", after, "field is immutable")
            }
            if storageName != "replicasets.apps", let policy = object[path: templatePath + ["spec", "restartPolicy"]]?.stringValue, policy != "Always" {
                errors.append(.init(kind: .notSupported, field: "spec.template.spec.restartPolicy", value: .string(policy), detail: "supported values: \"Always\""))
            }
        case "jobs.batch":
            for field in ["parallelism", "completions", "backoffLimit", "activeDeadlineSeconds", "ttlSecondsAfterFinished"] { nonNegative(["spec", field]) }
            errors += selectorErrors(object, templatePath: templatePath, kind: nil)
            errors += jobRestartPolicyErrors(object[path: templatePath + ["spec", "restartPolicy"]], field: "spec.template.spec.restartPolicy")
        case "cronjobs.batch":
            templatePath = ["spec", "jobTemplate", "spec", "template"]
            let schedule = object[path: ["spec", "schedule"]]?.stringValue ?? ""
            if schedule.isEmpty {
                errors.append(.init(kind: .required, field: "spec.schedule", value: nil, detail: ""))
            } else {
                do {
                    _ = try CronSchedule(parsing: schedule)
                } catch {
                    invalid("spec.schedule", .string(schedule), error.message)
                }
                if schedule.contains("TZ") { invalid("spec.schedule", .string(schedule), "cannot use TZ or CRON_TZ in schedule, use timeZone field instead") }
            }
            if let policy = object[path: ["spec", "concurrencyPolicy"]]?.stringValue, !["Allow", "Forbid", "Replace"].contains(policy) {
                errors.append(.init(kind: .notSupported, field: "spec.concurrencyPolicy", value: .string(policy),
                                    detail: "supported values: \"Allow\", \"Forbid\", \"Replace\""))
            }
            for field in ["successfulJobsHistoryLimit", "failedJobsHistoryLimit", "startingDeadlineSeconds"] { nonNegative(["spec", field]) }
            errors += jobRestartPolicyErrors(object[path: templatePath + ["spec", "restartPolicy"]], field: "spec.jobTemplate.spec.template.spec.restartPolicy")
        default:
            break
        }
        if let affinity = object[path: templatePath + ["spec", "affinity"]] {
            errors += affinityErrors(affinity, field: templatePath.joined(separator: ".") + ".spec.affinity")
        }
        return errors
    }

    /// A pod's affinity errors (operators), for pods themselves.
    static func podErrors(_ pod: JSONValue) -> [StructuralSchema.FieldError] {
        guard let affinity = pod[path: ["spec", "affinity"]] else { return [] }
        return affinityErrors(affinity, field: "spec.affinity")
    }

    private static func selectorErrors(_ object: JSONValue, templatePath: [String], kind: String?) -> [StructuralSchema.FieldError] {
        guard let selector = object[path: ["spec", "selector"]] else {
            return [.init(kind: .required, field: "spec.selector", value: nil, detail: "")]
        }
        let parsed: LabelSelector
        do {
            parsed = try LabelSelector(json: selector)
        } catch {
            return [.init(kind: .invalid, field: "spec.selector.matchExpressions", value: selector, detail: error.reason)]
        }
        if parsed.isEmpty {
            let detail = kind.map { "empty selector is invalid for \($0)" } ?? "empty selector is invalid"
            // Go prints the decoded struct.
            let labels = selector["matchLabels"] == nil ? "map[string]string(nil)" : "map[string]string{}"
            let expressions = selector["matchExpressions"] == nil ? "[]v1.LabelSelectorRequirement(nil)" : "[]v1.LabelSelectorRequirement{}"
            return [.init(kind: .invalid, field: "spec.selector", value: selector, detail: detail,
                          shownValue: "v1.LabelSelector{MatchLabels:\(labels), MatchExpressions:\(expressions)}")]
        }
        var labels: [String: String] = [:]
        for (key, value) in object[path: templatePath + ["metadata", "labels"]]?.objectValue ?? JSONObject() { labels[key] = value.stringValue }
        guard parsed.matches(labels) else {
            // Go prints the labels as a map[string]string, keys sorted.
            let shown = "map[string]string{" + labels.sorted { $0.key < $1.key }.map { "\"\($0.key)\":\"\($0.value)\"" }.joined(separator: ", ") + "}"
            return [.init(kind: .invalid, field: "spec.template.metadata.labels",
                          value: object[path: templatePath + ["metadata", "labels"]] ?? .object(JSONObject()), detail: "`selector` does not match template `labels`",
                          shownValue: shown)]
        }
        return []
    }

    private static func jobRestartPolicyErrors(_ policy: JSONValue?, field: String) -> [StructuralSchema.FieldError] {
        guard let text = policy?.stringValue else {
            return [.init(kind: .required, field: field, value: nil, detail: "valid values: \"OnFailure\", \"Never\"")]
        }
        guard text == "OnFailure" || text == "Never" else {
            return [.init(kind: .notSupported, field: field, value: .string(text), detail: "supported values: \"OnFailure\", \"Never\"")]
        }
        return []
    }

    private static func affinityErrors(_ affinity: JSONValue, field: String) -> [StructuralSchema.FieldError] {
        var errors: [StructuralSchema.FieldError] = []
        let nodeOperators = ["DoesNotExist", "Exists", "Gt", "In", "Lt", "NotIn"]
        let labelOperators = ["DoesNotExist", "Exists", "In", "NotIn"]
        func check(_ expressions: [JSONValue], _ path: String, _ allowed: [String]) {
            for (index, expression) in expressions.enumerated() {
                let op = expression["operator"]?.stringValue ?? ""
                if !allowed.contains(op) {
                    errors.append(.init(kind: .notSupported, field: "\(path)[\(index)].operator", value: .string(op),
                                        detail: "supported values: " + allowed.map { "\"\($0)\"" }.joined(separator: ", ")))
                }
            }
        }
        let node = field + ".nodeAffinity"
        for (index, term) in (affinity[path: ["nodeAffinity", "requiredDuringSchedulingIgnoredDuringExecution", "nodeSelectorTerms"]]?.arrayValue ?? []).enumerated() {
            let path = "\(node).requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[\(index)]"
            check(term["matchExpressions"]?.arrayValue ?? [], path + ".matchExpressions", nodeOperators)
            check(term["matchFields"]?.arrayValue ?? [], path + ".matchFields", ["In", "NotIn"])
        }
        for (index, preferred) in (affinity[path: ["nodeAffinity", "preferredDuringSchedulingIgnoredDuringExecution"]]?.arrayValue ?? []).enumerated() {
            check(preferred[path: ["preference", "matchExpressions"]]?.arrayValue ?? [],
                  "\(node).preferredDuringSchedulingIgnoredDuringExecution[\(index)].preference.matchExpressions", nodeOperators)
        }
        for kind in ["podAffinity", "podAntiAffinity"] {
            for (index, term) in (affinity[path: [kind, "requiredDuringSchedulingIgnoredDuringExecution"]]?.arrayValue ?? []).enumerated() {
                check(term[path: ["labelSelector", "matchExpressions"]]?.arrayValue ?? [],
                      "\(field).\(kind).requiredDuringSchedulingIgnoredDuringExecution[\(index)].labelSelector.matchExpressions", labelOperators)
            }
        }
        return errors
    }
}
