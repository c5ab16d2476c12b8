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

    /// `metadata.finalizers` as kube-apiserver checks them on every write: each a qualified name
    /// (an optional DNS subdomain prefix and `/`), not both `orphan` and `foregroundDeletion`;
    /// the field errors, and warnings for names without a domain.
    static func finalizerProblems(in object: JSONValue) -> (errors: [StructuralSchema.FieldError], warnings: [String]) {
        guard let finalizers = object[path: ["metadata", "finalizers"]]?.arrayValue else { return ([], []) }
        var errors: [StructuralSchema.FieldError] = []
        var warnings: [String] = []
        let names = finalizers.compactMap(\.stringValue)
        for (index, name) in names.enumerated() {
            for problem in qualifiedNameProblems(name) {
                errors.append(StructuralSchema.FieldError(kind: .invalid, field: "metadata.finalizers[\(index)]", value: .string(name), detail: problem))
            }
            if !name.contains("/"), !standardFinalizers.contains(name), qualifiedNameProblems(name).isEmpty {
                warnings.append("metadata.finalizers: \"\(name)\": prefer a domain-qualified finalizer name including a path (/) to avoid accidental conflicts with other finalizer writers")
            }
        }
        if names.contains("orphan"), names.contains("foregroundDeletion") {
            errors.append(StructuralSchema.FieldError(kind: .invalid, field: "metadata.finalizers", value: .array(finalizers),
                                                      detail: "finalizer orphan and foregroundDeletion cannot be both set"))
        }
        return (errors, warnings)
    }

    /// Finalizers Kubernetes itself uses without a domain.
    private static let standardFinalizers: Set<String> = ["kubernetes", "orphan", "foregroundDeletion"]

    private static func qualifiedNameProblems(_ value: String) -> [String] { KubeNameRules.qualifiedNameProblems(value) }

    private static let labelFormat = KubeNameRules.labelFormat
    private static let subdomainFormat = KubeNameRules.subdomainFormat

    private static func check(_ name: String, maxLength: Int, pattern: String, message: String, examples: [String]) -> [String] {
        KubeNameRules.check(name, maxLength: maxLength, pattern: pattern, message: message, examples: examples)
    }
}
