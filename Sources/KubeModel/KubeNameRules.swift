import Foundation

/// Kubernetes' syntax rules for names, label keys and label values, with apimachinery's
/// messages (each problem as `kubectl` and kube-apiserver word it), for whoever checks one
/// before it reaches an API server: the API server itself, `keadm join --labels`, edgecore's
/// `nodeLabels`.
public enum KubeNameRules {
    /// An RFC 1123 label.
    public static let labelFormat = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
    /// An RFC 1123 subdomain.
    public static let subdomainFormat = labelFormat + "(\\." + labelFormat + ")*"

    /// What is wrong with a qualified name (`[prefix/]name`, a label key), in kube's words.
    public static func qualifiedNameProblems(_ value: String) -> [String] {
        let nameFormat = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
        let nameMessage = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
        let parts = value.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        let name: String
        var problems: [String] = []
        switch parts.count {
        case 1:
            name = parts[0]
        case 2:
            name = parts[1]
            if parts[0].isEmpty {
                problems.append("prefix part must be non-empty")
            } else {
                problems += check(parts[0], maxLength: 253, pattern: subdomainFormat,
                                  message: "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
                                  examples: ["example.com"]).map { "prefix part " + $0 }
            }
        default:
            return ["a qualified name " + nameMessage + " (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '" + nameFormat
                    + "') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"]
        }
        if name.isEmpty { return problems + ["name part must be non-empty"] }
        return problems + check(name, maxLength: 63, pattern: nameFormat, message: "name part " + nameMessage, examples: ["MyName", "my.name", "123-abc"])
            .map { $0.hasPrefix("must be no more") ? "name part " + $0 : $0 }
    }

    /// What is wrong with a label value, in kube's words (an empty value is valid).
    public static func labelValueProblems(_ value: String) -> [String] {
        check(value, maxLength: 63, pattern: "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?",
              message: "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
              examples: ["MyValue", "my_value", "12345"])
    }

    /// The problems of `name` against `pattern` and `maxLength`, worded as Go's RegexError.
    public static func check(_ name: String, maxLength: Int, pattern: String, message: String, examples: [String]) -> [String] {
        var problems: [String] = []
        if name.count > maxLength { problems.append("must be no more than \(maxLength) characters") }
        let matches = (try? NSRegularExpression(pattern: "^" + pattern + "$"))?.firstMatch(in: name, range: NSRange(name.startIndex..., in: name)) != nil
        if !matches {
            // Go's RegexError: "(e.g. 'a',  or 'b', regex used for validation is '…')".
            let shown = examples.enumerated().map { ($0.offset > 0 ? " or " : "") + "'\($0.element)', " }.joined()
            problems.append(message + " (e.g. " + shown + "regex used for validation is '" + pattern + "')")
        }
        return problems
    }
}
