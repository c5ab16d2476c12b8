import Foundation
import KubeModel

/// Object names as kube-apiserver 1.32 checks them on create: each kind's rule (an RFC 1123
/// subdomain for most, an RFC 1123 label for namespaces, an RFC 1035 label for services, a
/// path segment for RBAC's kinds), each failure a `metadata.name` field error in its words.
enum NameValidation {
    private enum Rule {
        case subdomain, label, dns1035Label, pathSegment
    }

    private static func rule(for resource: APIResource) -> Rule {
        switch (resource.group, resource.plural) {
        case ("", "namespaces"): .label
        case ("", "services"): .dns1035Label
        case ("rbac.authorization.k8s.io", _): .pathSegment
        default: .subdomain
        }
    }

    /// What is wrong with `name` for `resource`, in kube's words; empty when it is valid.
    static func problems(_ name: String, for resource: APIResource) -> [String] {
        switch rule(for: resource) {
        case .subdomain:
            return check(name, maxLength: 253, pattern: subdomainFormat,
                         message: "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
                         examples: ["example.com"])
        case .label:
            return check(name, maxLength: 63, pattern: labelFormat,
                         message: "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character",
                         examples: ["my-name", "123-abc"])
        case .dns1035Label:
            return check(name, maxLength: 63, pattern: "[a-z]([-a-z0-9]*[a-z0-9])?",
                         message: "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character",
                         examples: ["my-name", "abc-123"])
        case .pathSegment:
            if name == "." || name == ".." { return ["may not be '\(name)'"] }
            return ["/", "%"].filter { name.contains($0) }.map { "may not contain '\($0)'" }
        }
    }

    /// kube-apiserver's 422 for an invalid name of `kind`.
    static func invalid(_ name: String, problems: [String], resource: APIResource) -> APIError {
        let errors = problems.map { StructuralSchema.FieldError(kind: .invalid, field: "metadata.name", value: .string(name), detail: $0) }
        return APIServer.invalid(errors, resource: resource, name: name)
    }

    private static let labelFormat = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
    private static let subdomainFormat = labelFormat + "(\\." + labelFormat + ")*"

    private static func check(_ name: String, maxLength: Int, pattern: String, message: String, examples: [String]) -> [String] {
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
