/// Kubernetes' strategic merge patch (what `kubectl apply` and `kubectl patch --type strategic`
/// send for built-in types), as far as those objects need it.
///
/// Like a JSON merge patch, except that lists of objects with a merge key (containers by
/// `name`, container ports by `containerPort`, service ports by `port`, conditions by `type`,
/// ...) merge element by element, `finalizers` merge as a set, and the directives work:
/// `$patch: replace|delete|merge`, `$retainKeys`, `$setElementOrder/{field}` and
/// `$deleteFromPrimitiveList/{field}`. Lists without a merge key are replaced, as Kubernetes does.
public enum StrategicMergePatch {
    /// `patch` applied to `original`.
    public static func apply(_ patch: JSONValue, to original: JSONValue) -> JSONValue {
        strip(merge(patch, into: original, path: []) ?? .null)
    }

    /// The merge key of the list at `field` under `path`, when its elements merge by key.
    static func mergeKey(of field: String, under path: [String]) -> String? {
        switch field {
        case "containers", "initContainers", "ephemeralContainers", "volumes", "env", "imagePullSecrets": return "name"
        case "volumeMounts": return "mountPath"
        case "volumeDevices": return "devicePath"
        case "ports":
            return path.contains(where: { $0 == "containers" || $0 == "initContainers" || $0 == "ephemeralContainers" }) ? "containerPort" : "port"
        case "conditions", "addresses": return "type"
        case "ownerReferences": return "uid"
        case "taints": return "key"
        case "hostAliases": return "ip"
        case "topologySpreadConstraints": return "topologyKey"
        default: return nil
        }
    }

    /// Lists of strings that merge as sets.
    static let primitiveMergeLists: Set<String> = ["finalizers"]

    /// The merge of `patch` into `original`; `nil` when the patch deletes it.
    private static func merge(_ patch: JSONValue, into original: JSONValue?, path: [String]) -> JSONValue? {
        guard case .object(let members) = patch else { return patch }
        switch members["$patch"]?.stringValue {
        case "delete": return nil
        case "replace": return patch
        default: break
        }
        var result = original?.objectValue ?? JSONObject()
        var orders: [String: [JSONValue]] = [:]
        for (key, value) in members {
            if key == "$patch" || key == "$retainKeys" { continue }
            if key.hasPrefix("$setElementOrder/") {
                orders[String(key.dropFirst("$setElementOrder/".count))] = value.arrayValue ?? []
                continue
            }
            if key.hasPrefix("$deleteFromPrimitiveList/") {
                let field = String(key.dropFirst("$deleteFromPrimitiveList/".count))
                let removed = Set(value.arrayValue ?? [])
                if let list = result[field]?.arrayValue { result[field] = .array(list.filter { !removed.contains($0) }) }
                continue
            }
            if value == .null {
                result[key] = nil
                continue
            }
            switch value {
            case .object:
                result[key] = merge(value, into: result[key], path: path + [key])
            case .array(let elements):
                result[key] = .array(mergeList(elements, into: result[key]?.arrayValue ?? [], field: key, path: path))
            default:
                result[key] = value
            }
        }
        if let retained = members["$retainKeys"]?.arrayValue?.compactMap(\.stringValue) {
            let keep = Set(retained)
            for key in result.keys where !keep.contains(key) { result[key] = nil }
        }
        for (field, order) in orders {
            guard let list = result[field]?.arrayValue else { continue }
            result[field] = .array(reorder(list, by: order, key: mergeKey(of: field, under: path)))
        }
        return .object(result)
    }

    private static func mergeList(_ patch: [JSONValue], into original: [JSONValue], field: String, path: [String]) -> [JSONValue] {
        if primitiveMergeLists.contains(field) {
            var merged = original
            for element in patch where !merged.contains(element) { merged.append(element) }
            return merged
        }
        guard let key = mergeKey(of: field, under: path), patch.allSatisfy({ $0.objectValue != nil }) else { return patch }
        if patch.contains(where: { $0["$patch"]?.stringValue == "replace" }) {
            return patch.filter { $0["$patch"]?.stringValue != "replace" }
        }
        var merged = original
        for element in patch {
            let identity = element[key]
            let index = merged.firstIndex { $0[key] == identity && identity != nil }
            if element["$patch"]?.stringValue == "delete" {
                if let index { merged.remove(at: index) }
                continue
            }
            if let index {
                merged[index] = merge(element, into: merged[index], path: path + [field]) ?? merged[index]
            } else {
                merged.append(merge(element, into: nil, path: path + [field]) ?? element)
            }
        }
        return merged
    }

    /// `list` in the order `order` gives (by merge key, or by value for primitives); elements it
    /// does not name keep their relative order after the named ones.
    private static func reorder(_ list: [JSONValue], by order: [JSONValue], key: String?) -> [JSONValue] {
        let identity = { (element: JSONValue) -> JSONValue? in key.map { element[$0] ?? .null } ?? element }
        var remaining = list
        var ordered: [JSONValue] = []
        for wanted in order {
            let target = key.map { wanted[$0] ?? .null } ?? wanted
            if let index = remaining.firstIndex(where: { identity($0) == target }) { ordered.append(remaining.remove(at: index)) }
        }
        return ordered + remaining
    }

    /// The value without directive keys.
    private static func strip(_ value: JSONValue) -> JSONValue {
        switch value {
        case .object(let members):
            var clean = JSONObject()
            for (key, member) in members where !key.hasPrefix("$") { clean[key] = strip(member) }
            return .object(clean)
        case .array(let elements):
            return .array(elements.map(strip))
        default:
            return value
        }
    }
}
