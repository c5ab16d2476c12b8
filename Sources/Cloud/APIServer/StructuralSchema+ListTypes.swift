import KubeModel

extension StructuralSchema {
    /// The duplicates that `x-kubernetes-list-type` forbids, as kube-apiserver finds them after
    /// the schema's own checks: in a `set`, an item equal to an earlier one; in a `map`, an item
    /// whose `x-kubernetes-list-map-keys` equal an earlier item's (each duplicate value is
    /// reported once, at its second appearance), and items that are not objects.
    static func listTypeErrors(in value: JSONValue, _ schema: JSONValue, path: String, into errors: inout [FieldError]) {
        switch value {
        case .object(let object):
            for (key, member) in object {
                let child = path.isEmpty ? key : path + "." + key
                if let property = schema[path: ["properties", key]] {
                    listTypeErrors(in: member, property, path: child, into: &errors)
                } else if let additional = schema["additionalProperties"], case .object = additional {
                    listTypeErrors(in: member, additional, path: path.isEmpty ? "[\(key)]" : path + "[\(key)]", into: &errors)
                }
            }
        case .array(let items):
            switch schema["x-kubernetes-list-type"]?.stringValue {
            case "set":
                for index in secondAppearances(items) {
                    errors.append(FieldError(kind: .duplicate, field: "\(path)[\(index)]", value: items[index], detail: ""))
                }
            case "map":
                if let index = items.firstIndex(where: { item in
                    if case .object = item { return false }
                    return item != .null
                }) {
                    errors.append(FieldError(kind: .invalid, field: "\(path)[\(index)]", value: items[index], detail: "must be an object for an array of list-type map"))
                    break
                }
                let keyNames = schema["x-kubernetes-list-map-keys"]?.arrayValue?.compactMap(\.stringValue) ?? []
                // The key members each item has (an item without them has the empty key).
                let keys = items.map { item -> JSONValue in
                    var key = JSONObject()
                    for name in keyNames { if let member = item[name] { key[name] = member } }
                    return .object(key)
                }
                for index in secondAppearances(keys) {
                    errors.append(FieldError(kind: .duplicate, field: "\(path)[\(index)]", value: keys[index], detail: ""))
                }
            default:
                break
            }
            if let itemSchema = schema["items"], case .object = itemSchema {
                for (index, item) in items.enumerated() { listTypeErrors(in: item, itemSchema, path: "\(path)[\(index)]", into: &errors) }
            }
        default:
            break
        }
    }

    /// The index of each value's second appearance in `items`, in order.
    private static func secondAppearances(_ items: [JSONValue]) -> [Int] {
        var seen: [JSONValue: Int] = [:]
        var indices: [Int] = []
        for (index, item) in items.enumerated() {
            seen[item, default: 0] += 1
            if seen[item] == 2 { indices.append(index) }
        }
        return indices
    }
}
