import KubeModel

extension StructuralSchema {
    /// One field's failure, worded as `k8s.io/apimachinery`'s `field.Error` (Kubernetes 1.32)
    /// words it; the kind's raw value is the cause's `reason`.
    struct FieldError: Sendable, Equatable {
        enum Kind: String, Sendable {
            case invalid = "FieldValueInvalid", typeInvalid = "FieldValueTypeInvalid", required = "FieldValueRequired"
            case notSupported = "FieldValueNotSupported", forbidden = "FieldValueForbidden", duplicate = "FieldValueDuplicate"
            case tooLong = "FieldValueTooLong", tooMany = "FieldValueTooMany"
        }
        let kind: Kind
        let field: String
        let value: JSONValue?
        let detail: String
        /// The value as Go shows it when its type is not JSON's (`map[string]string{…}`).
        var shownValue: String? = nil

        var message: String {
            let shown = shownValue ?? StructuralSchema.quoted(value ?? .null)
            let body: String = switch kind {
            case .required: "Required value"
            case .forbidden: "Forbidden"
            // Go leaves out a value that is too long.
            case .tooLong: "Too long"
            case .invalid, .typeInvalid: "Invalid value: " + shown
            case .notSupported: "Unsupported value: " + shown
            case .duplicate: "Duplicate value: " + shown
            case .tooMany: "Too many: " + shown
            }
            return "\(field): " + (detail.isEmpty ? body : body + ": " + detail)
        }
    }

    /// A value decoded from JSON as Go's field errors show it: strings as `%q`, numbers and
    /// booleans as `%v`, lists and objects as `%#v` (`[]interface {}{"a", 1}`,
    /// `map[string]interface {}{"name":"http"}`), `null` as null.
    static func quoted(_ value: JSONValue) -> String {
        switch value {
        case .string(let text): goQuoted(text)
        case .null: "null"
        default: goSyntax(value)
        }
    }

    /// `%#v` of a value inside a list or object.
    private static func goSyntax(_ value: JSONValue) -> String {
        switch value {
        case .null: "interface {}(nil)"
        case .bool(let flag): flag ? "true" : "false"
        case .number(let text): text
        case .string(let text): goQuoted(text)
        case .array(let items): "[]interface {}{" + items.map(goSyntax).joined(separator: ", ") + "}"
        case .object(let members):
            // fmt prints a map's keys sorted.
            "map[string]interface {}{" + members.sorted { $0.key < $1.key }.map { goQuoted($0.key) + ":" + goSyntax($0.value) }.joined(separator: ", ") + "}"
        }
    }

    /// Go's `%q`: double quotes, with backslashes, quotes and control characters escaped.
    private static func goQuoted(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            case "\r": out += "\\r"
            default:
                if scalar.value < 0x20 || scalar.value == 0x7f {
                    out += "\\x" + (scalar.value < 0x10 ? "0" : "") + String(scalar.value, radix: 16)
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }
}
