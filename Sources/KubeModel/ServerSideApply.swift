import Foundation

/// Kubernetes server-side apply (`kubectl apply --server-side`), as far as one API server
/// without schemas can do it: each applier (field manager) owns the fields its configuration
/// sets, recorded in `metadata.managedFields` in Kubernetes' `FieldsV1` form
/// (`{"f:spec":{"f:containers":{"k:{\"name\":\"app\"}":{".":{},"f:image":{}}}}}`).
///
/// - Applying merges the configuration into the live object (lists with a merge key element by
///   element for built-in kinds; other lists are atomic).
/// - A field the manager applied before and leaves out now is removed, unless another applier
///   owns it too.
/// - Setting a field another applier owns to a different value is a conflict, unless forced;
///   forcing moves the field to this manager. Equal values are owned by both.
///
/// Departure from Kubernetes: only appliers own fields. Writes by update, patch or create do
/// not record a manager, so they never cause a conflict for a later apply.
public enum ServerSideApply {
    /// Fields another applier owns with a different value.
    public struct ConflictError: Error, Sendable, Equatable, CustomStringConvertible {
        /// `(manager, path)` per conflicting field, paths as `.spec.containers[name="app"].image`.
        public var conflicts: [(manager: String, path: String)]

        public static func == (lhs: Self, rhs: Self) -> Bool { lhs.description == rhs.description }

        public var description: String {
            let listed = conflicts.map { "conflict with \"\($0.manager)\": \($0.path)" }
            return "Apply failed with \(conflicts.count) conflict\(conflicts.count == 1 ? "" : "s"): " + listed.joined(separator: "\n")
        }
    }

    /// A field path: `f:name` steps into an object member, `k:{json}` into the list element
    /// whose merge key has that value, `.` is the element itself.
    typealias FieldPath = [String]

    /// `configuration` applied by `manager` to `live` (`nil` to create). `strategic` for built-in
    /// kinds (lists merge by their keys); `time` is recorded with the manager's entry.
    public static func apply(_ configuration: JSONValue, to live: JSONValue?, manager: String, force: Bool, strategic: Bool,
                             time: String) throws(ConflictError) -> JSONValue {
        let applied = tracked(configuration)
        let current = live ?? .object(JSONObject())
        var managers = Self.managers(of: current)
        let newFields = Set(leaves(of: applied, strategic: strategic, path: []))
        let oldFields = managers.first { $0.manager == manager && $0.operation == "Apply" }?.fields ?? []

        // Conflicts: another applier owns a field this one sets to something else.
        var conflicts: [(String, String)] = []
        for other in managers where other.manager != manager && other.operation == "Apply" {
            for field in other.fields.intersection(newFields).sorted(by: { $0.lexicographicallyPrecedes($1) }) where field.last != "." {
                if value(at: field, in: current) != value(at: field, in: applied) { conflicts.append((other.manager, describe(field))) }
            }
        }
        if !conflicts.isEmpty, !force { throw ConflictError(conflicts: conflicts) }

        var result = strategic ? StrategicMergePatch.apply(applied, to: current) : current.applyingMergePatch(applied)
        // What this manager applied before and no longer does goes, unless someone else owns it.
        let ownedByOthers = managers.filter { $0.manager != manager }.reduce(into: Set<FieldPath>()) { $0.formUnion($1.fields) }
        let removed = oldFields.subtracting(newFields).subtracting(ownedByOthers)
        let removedElements = removed.filter { $0.last == "." }.map { Array($0.dropLast()) }
        for field in removed.sorted(by: { $0.count > $1.count }) {
            // Inside an element that goes as a whole: removing its key first would lose it.
            if field.last != ".", removedElements.contains(where: { field.count > $0.count && field.starts(with: $0) }) { continue }
            remove(field, from: &result)
        }

        // Ownership: this manager owns what it applied; forcing takes it from the others.
        if force {
            for index in managers.indices where managers[index].manager != manager { managers[index].fields.subtract(newFields) }
            managers.removeAll { $0.fields.isEmpty }
        }
        managers.removeAll { $0.manager == manager && $0.operation == "Apply" }
        managers.append(Manager(manager: manager, operation: "Apply", apiVersion: configuration["apiVersion"]?.stringValue ?? "",
                                time: time, fields: newFields))
        result.set(.array(managers.map(\.json)), at: ["metadata", "managedFields"])
        return result
    }

    /// The parts of a configuration that are owned: everything but identity, status and
    /// server-set metadata.
    private static func tracked(_ configuration: JSONValue) -> JSONValue {
        var applied = configuration
        for field in ["apiVersion", "kind", "status"] { applied[field] = nil }
        if var metadata = applied["metadata"]?.objectValue {
            for field in ["name", "namespace", "uid", "resourceVersion", "generation", "creationTimestamp", "managedFields", "selfLink",
                          "deletionTimestamp", "deletionGracePeriodSeconds"] {
                metadata[field] = nil
            }
            applied["metadata"] = .object(metadata)
        }
        return applied
    }

    // MARK: managers

    struct Manager {
        var manager: String
        var operation: String
        var apiVersion: String
        var time: String
        var fields: Set<FieldPath>

        var json: JSONValue {
            .object(JSONObject([
                ("manager", .string(manager)), ("operation", .string(operation)), ("apiVersion", .string(apiVersion)),
                ("time", .string(time)), ("fieldsType", .string("FieldsV1")), ("fieldsV1", ServerSideApply.tree(fields)),
            ]))
        }
    }

    static func managers(of object: JSONValue) -> [Manager] {
        (object[path: ["metadata", "managedFields"]]?.arrayValue ?? []).map { entry in
            Manager(manager: entry["manager"]?.stringValue ?? "", operation: entry["operation"]?.stringValue ?? "Update",
                    apiVersion: entry["apiVersion"]?.stringValue ?? "", time: entry["time"]?.stringValue ?? "",
                    fields: Set(leaves(ofTree: entry["fieldsV1"] ?? .object(JSONObject()), path: [])))
        }
    }

    // MARK: field sets

    /// The owned leaves of a value: object members (`f:`), keyed list elements (`k:` with `.`).
    static func leaves(of value: JSONValue, strategic: Bool, path: [String]) -> [FieldPath] {
        guard case .object(let members) = value else { return [] }
        var result: [FieldPath] = []
        for (key, child) in members {
            let step = "f:" + key
            switch child {
            case .object(let nested) where !nested.isEmpty:
                result += leaves(of: child, strategic: strategic, path: path + [key]).map { [step] + $0 }
            case .array(let elements):
                if strategic, let mergeKey = StrategicMergePatch.mergeKey(of: key, under: path),
                   elements.allSatisfy({ $0[mergeKey] != nil }) {
                    for element in elements {
                        let keyStep = "k:" + JSONValue.object(JSONObject([(mergeKey, element[mergeKey] ?? .null)])).serialized
                        result.append([step, keyStep, "."])
                        result += leaves(of: element, strategic: strategic, path: path + [key]).map { [step, keyStep] + $0 }
                    }
                } else {
                    result.append([step])
                }
            default:
                result.append([step])
            }
        }
        return result
    }

    /// The leaves of a `FieldsV1` tree.
    static func leaves(ofTree tree: JSONValue, path: FieldPath) -> [FieldPath] {
        guard case .object(let members) = tree, !members.isEmpty else { return path.isEmpty ? [] : [path] }
        return members.flatMap { leaves(ofTree: $0.value, path: path + [$0.key]) }
    }

    /// A `FieldsV1` tree from leaves.
    static func tree(_ fields: Set<FieldPath>) -> JSONValue {
        var root = JSONValue.object(JSONObject())
        for field in fields.sorted(by: { $0.lexicographicallyPrecedes($1) }) where root[path: field] == nil {
            root.set(.object(JSONObject()), at: field)
        }
        return root
    }

    /// The value a field path names in `object`, `nil` when absent.
    static func value(at field: FieldPath, in object: JSONValue) -> JSONValue? {
        var current: JSONValue? = object
        for step in field {
            guard let value = current else { return nil }
            if step == "." { continue }
            if step.hasPrefix("f:") {
                current = value[String(step.dropFirst(2))]
            } else if step.hasPrefix("k:"), let key = try? JSONValue(parsing: String(step.dropFirst(2))), case .object(let wanted) = key {
                current = value.arrayValue?.first { element in wanted.allSatisfy { element[$0.key] == $0.value } }
            } else {
                return nil
            }
        }
        return current
    }

    /// Removes the member or list element a field path names.
    static func remove(_ field: FieldPath, from object: inout JSONValue) {
        var steps = field
        if steps.last == "." { steps.removeLast() }
        guard let last = steps.last else { return }
        let parent = Array(steps.dropLast())
        guard var container = value(at: parent, in: object) else { return }
        if last.hasPrefix("f:") {
            container[String(last.dropFirst(2))] = nil
        } else if last.hasPrefix("k:"), let key = try? JSONValue(parsing: String(last.dropFirst(2))), case .object(let wanted) = key,
                  let elements = container.arrayValue {
            container = .array(elements.filter { element in !wanted.allSatisfy { element[$0.key] == $0.value } })
        } else {
            return
        }
        replace(parent, in: &object, with: container)
    }

    private static func replace(_ field: FieldPath, in object: inout JSONValue, with replacement: JSONValue) {
        guard let first = field.first else {
            object = replacement
            return
        }
        let rest = Array(field.dropFirst())
        if first.hasPrefix("f:") {
            let name = String(first.dropFirst(2))
            guard var child = object[name] else { return }
            replace(rest, in: &child, with: replacement)
            object[name] = child
        } else if first.hasPrefix("k:"), let key = try? JSONValue(parsing: String(first.dropFirst(2))), case .object(let wanted) = key,
                  var elements = object.arrayValue,
                  let index = elements.firstIndex(where: { element in wanted.allSatisfy { element[$0.key] == $0.value } }) {
            replace(rest, in: &elements[index], with: replacement)
            object = .array(elements)
        }
    }

    /// `.spec.containers[name="app"].image`, as Kubernetes names fields in conflicts.
    static func describe(_ field: FieldPath) -> String {
        field.map { step -> String in
            if step.hasPrefix("f:") { return "." + step.dropFirst(2) }
            if step.hasPrefix("k:"), let key = try? JSONValue(parsing: String(step.dropFirst(2))), case .object(let members) = key {
                return "[" + members.map { "\($0.key)=\($0.value.serialized)" }.joined(separator: ",") + "]"
            }
            return ""
        }.joined()
    }
}
