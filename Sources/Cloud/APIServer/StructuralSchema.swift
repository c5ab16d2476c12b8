import Foundation
import KubeModel

/// A custom resource version's structural schema (`openAPIV3Schema`), applied to objects as
/// kube-apiserver does on every write: unknown fields pruned, defaults filled in, then
/// validated, each failure a field error with kube-apiserver's wording.
struct StructuralSchema: Sendable {
    let root: JSONValue

    // MARK: pruning

    /// `value` without the members its schema does not name (unless the schema preserves
    /// unknown fields); `apiVersion`, `kind` and `metadata` of the object itself always stay.
    func pruned(_ value: JSONValue) -> JSONValue {
        guard case .object(var object) = value else { return value }
        let kept = ["apiVersion", "kind", "metadata"].compactMap { key in object[key].map { (key, $0) } }
        for (key, _) in kept { object[key] = nil }
        guard case .object(var result) = Self.prune(.object(object), root) else { return value }
        for (key, member) in kept.reversed() { result = JSONObject([(key, member)] + result.map { ($0.key, $0.value) }) }
        return .object(result)
    }

    private static func prune(_ value: JSONValue, _ schema: JSONValue) -> JSONValue {
        switch value {
        case .object(let object):
            if schema["x-kubernetes-preserve-unknown-fields"] == .bool(true), schema["properties"] == nil, schema["additionalProperties"] == nil { return value }
            var result = JSONObject()
            for (key, member) in object {
                if let property = schema[path: ["properties", key]] {
                    result[key] = prune(member, property)
                } else if let additional = schema["additionalProperties"], case .object = additional {
                    result[key] = prune(member, additional)
                } else if schema["x-kubernetes-preserve-unknown-fields"] == .bool(true) || schema["additionalProperties"] == .bool(true) {
                    result[key] = member
                }
            }
            return .object(result)
        case .array(let items):
            guard let itemSchema = schema["items"], case .object = itemSchema else { return value }
            return .array(items.map { prune($0, itemSchema) })
        default:
            return value
        }
    }

    /// The dotted paths of what ``pruned(_:)`` would drop (`spec.colour`), for
    /// `fieldValidation` to warn of or refuse.
    func unknownFields(in value: JSONValue) -> [String] {
        guard case .object(var object) = value else { return [] }
        for key in ["apiVersion", "kind", "metadata"] { object[key] = nil }
        var unknown: [String] = []
        Self.collectUnknown(.object(object), root, path: "", into: &unknown)
        return unknown
    }

    private static func collectUnknown(_ value: JSONValue, _ schema: JSONValue, path: String, into unknown: inout [String]) {
        switch value {
        case .object(let object):
            if schema["x-kubernetes-preserve-unknown-fields"] == .bool(true), schema["properties"] == nil, schema["additionalProperties"] == nil { return }
            for (key, member) in object {
                let child = path.isEmpty ? key : path + "." + key
                if let property = schema[path: ["properties", key]] {
                    collectUnknown(member, property, path: child, into: &unknown)
                } else if let additional = schema["additionalProperties"], case .object = additional {
                    collectUnknown(member, additional, path: child, into: &unknown)
                } else if schema["x-kubernetes-preserve-unknown-fields"] != .bool(true), schema["additionalProperties"] != .bool(true) {
                    unknown.append(child)
                }
            }
        case .array(let items):
            guard let itemSchema = schema["items"], case .object = itemSchema else { return }
            for (index, item) in items.enumerated() { collectUnknown(item, itemSchema, path: "\(path)[\(index)]", into: &unknown) }
        default:
            return
        }
    }

    // MARK: defaulting

    /// `value` with the schema's defaults filled in where members are missing.
    func defaulted(_ value: JSONValue) -> JSONValue { Self.applyDefaults(value, root) }

    private static func applyDefaults(_ value: JSONValue, _ schema: JSONValue) -> JSONValue {
        switch value {
        case .object(var object):
            for (key, property) in schema["properties"]?.objectValue ?? JSONObject() {
                if object[key] == nil, let defaultValue = property["default"] { object[key] = defaultValue }
                if let member = object[key] { object[key] = applyDefaults(member, property) }
            }
            if let additional = schema["additionalProperties"], case .object = additional {
                for (key, member) in object where schema[path: ["properties", key]] == nil { object[key] = applyDefaults(member, additional) }
            }
            return .object(object)
        case .array(let items):
            guard let itemSchema = schema["items"], case .object = itemSchema else { return value }
            return .array(items.map { applyDefaults($0, itemSchema) })
        default:
            return value
        }
    }

    // MARK: validation

    /// Every field error of `value` (the object without its `apiVersion`, `kind`, `metadata`).
    func errors(in value: JSONValue) -> [FieldError] {
        var errors: [FieldError] = []
        guard case .object(var object) = value else { return errors }
        for key in ["apiVersion", "kind", "metadata"] { object[key] = nil }
        Self.validate(.object(object), root, path: "", into: &errors)
        Self.listTypeErrors(in: .object(object), root, path: "", into: &errors)
        return errors
    }

    /// The checks in the order kube-openapi's schema validator makes them: type, then the
    /// string, format, number and list checks, the enum, then the object's.
    private static func validate(_ value: JSONValue, _ schema: JSONValue, path: String, into errors: inout [FieldError]) {
        let name = path.isEmpty ? "<root>" : path
        if value == .null {
            if schema["nullable"] != .bool(true), schema["type"] != nil {
                errors.append(FieldError(kind: .typeInvalid, field: name, value: value, detail: "\(name) in body must be of type \(schema["type"]?.stringValue ?? ""): \"null\""))
            }
            return
        }
        if let type = schema["type"]?.stringValue, !matches(value, type: type), schema["x-kubernetes-int-or-string"] != .bool(true) {
            errors.append(FieldError(kind: .typeInvalid, field: name, value: value, detail: "\(name) in body must be of type \(type): \"\(typeName(of: value))\""))
            return
        }
        if schema["x-kubernetes-int-or-string"] == .bool(true), !(matches(value, type: "integer") || matches(value, type: "string")) {
            errors.append(FieldError(kind: .typeInvalid, field: name, value: value, detail: "\(name) in body must be of type integer or string: \"\(typeName(of: value))\""))
            return
        }
        switch value {
        case .string(let text): validateString(text, value, schema, name: name, into: &errors)
        case .number(let text): validateNumber(text, value, schema, name: name, into: &errors)
        case .array(let items): validateList(items, value, schema, path: path, into: &errors)
        default: break
        }
        if let options = schema["enum"]?.arrayValue, !options.contains(value) {
            errors.append(FieldError(kind: .notSupported, field: name, value: value, detail: "supported values: " + options.map(quoted).joined(separator: ", ")))
        }
        if case .object(let object) = value { validateObject(object, schema, path: path, into: &errors) }
    }

    private static func validateString(_ text: String, _ value: JSONValue, _ schema: JSONValue, name: String, into errors: inout [FieldError]) {
        let length = text.count
        if let most = schema["maxLength"]?.int64Value, length > most {
            errors.append(FieldError(kind: .tooLong, field: name, value: nil, detail: "may not be more than \(most) bytes"))
        }
        if let least = schema["minLength"]?.int64Value, length < least {
            errors.append(FieldError(kind: .invalid, field: name, value: value, detail: "\(name) in body should be at least \(least) chars long"))
        }
        if let pattern = schema["pattern"]?.stringValue, let regex = try? NSRegularExpression(pattern: pattern),
           regex.firstMatch(in: text, range: NSRange(text.startIndex..., in: text)) == nil {
            errors.append(FieldError(kind: .invalid, field: name, value: value, detail: "\(name) in body should match '\(pattern)'"))
        }
        if let format = schema["format"]?.stringValue, SchemaFormats.check(text, format: format) == false {
            errors.append(FieldError(kind: .typeInvalid, field: name, value: value, detail: "\(name) in body must be of type \(format): \(quoted(value))"))
        }
    }

    private static func validateNumber(_ text: String, _ value: JSONValue, _ schema: JSONValue, name: String, into errors: inout [FieldError]) {
        guard let number = Double(text) else { return }
        if let factor = schema["multipleOf"]?.numberValue, factor > 0 {
            let quotient = number / factor
            if quotient != quotient.rounded() {
                errors.append(FieldError(kind: .invalid, field: name, value: value, detail: "\(name) in body should be a multiple of \(format(factor))"))
            }
        }
        if let maximum = schema["maximum"]?.numberValue {
            let exclusive = schema["exclusiveMaximum"] == .bool(true)
            if exclusive ? number >= maximum : number > maximum {
                errors.append(FieldError(kind: .invalid, field: name, value: value,
                                         detail: "\(name) in body should be less than \(exclusive ? "" : "or equal to ")\(format(maximum))"))
            }
        }
        if let minimum = schema["minimum"]?.numberValue {
            let exclusive = schema["exclusiveMinimum"] == .bool(true)
            if exclusive ? number <= minimum : number < minimum {
                errors.append(FieldError(kind: .invalid, field: name, value: value,
                                         detail: "\(name) in body should be greater than \(exclusive ? "" : "or equal to ")\(format(minimum))"))
            }
        }
    }

    private static func validateList(_ items: [JSONValue], _ value: JSONValue, _ schema: JSONValue, path: String, into errors: inout [FieldError]) {
        let name = path.isEmpty ? "<root>" : path
        if let itemSchema = schema["items"], case .object = itemSchema {
            for (index, item) in items.enumerated() { validate(item, itemSchema, path: "\(path)[\(index)]", into: &errors) }
        }
        if let least = schema["minItems"]?.int64Value, items.count < least {
            errors.append(FieldError(kind: .invalid, field: name, value: value, detail: "\(name) in body should have at least \(least) items"))
        }
        if let most = schema["maxItems"]?.int64Value, items.count > most {
            errors.append(FieldError(kind: .tooMany, field: name, value: .integer(items.count), detail: "must have at most \(most) items"))
        }
        if schema["uniqueItems"] == .bool(true), Set(items).count != items.count {
            errors.append(FieldError(kind: .invalid, field: name, value: .string(""), detail: "\(name) in body shouldn't contain duplicates"))
        }
    }

    private static func validateObject(_ object: JSONObject, _ schema: JSONValue, path: String, into errors: inout [FieldError]) {
        let name = path.isEmpty ? "<root>" : path
        if let least = schema["minProperties"]?.int64Value, object.count < least {
            errors.append(FieldError(kind: .invalid, field: name, value: .integer(object.count), detail: "\(name) in body should have at least \(least) properties"))
        }
        if let most = schema["maxProperties"]?.int64Value, object.count > most {
            errors.append(FieldError(kind: .tooMany, field: name, value: .integer(object.count), detail: "must have at most \(most) items"))
        }
        for required in schema["required"]?.arrayValue?.compactMap(\.stringValue) ?? [] where object[required] == nil {
            errors.append(FieldError(kind: .required, field: path.isEmpty ? required : path + "." + required, value: nil, detail: ""))
        }
        for (key, member) in object {
            let child = path.isEmpty ? key : path + "." + key
            if let property = schema[path: ["properties", key]] {
                validate(member, property, path: child, into: &errors)
            } else if let additional = schema["additionalProperties"], case .object = additional {
                validate(member, additional, path: child, into: &errors)
            }
        }
    }

    private static func matches(_ value: JSONValue, type: String) -> Bool {
        switch (type, value) {
        case ("object", .object), ("array", .array), ("string", .string), ("boolean", .bool): true
        case ("number", .number): true
        case ("integer", .number(let text)): Int64(text) != nil || Double(text).map { $0 == $0.rounded() && !text.contains(".") } == true
        default: false
        }
    }

    private static func typeName(of value: JSONValue) -> String {
        switch value {
        case .null: "null"
        case .bool: "boolean"
        case .number(let text): Int64(text) != nil ? "integer" : "number"
        case .string: "string"
        case .array: "array"
        case .object: "object"
        }
    }

    private static func format(_ number: Double) -> String {
        number == number.rounded() && abs(number) < 9e18 ? String(Int64(number)) : String(number)
    }

}

extension JSONValue {
    /// The value of a number.
    fileprivate var numberValue: Double? {
        if case .number(let text) = self { return Double(text) }
        return nil
    }
}
