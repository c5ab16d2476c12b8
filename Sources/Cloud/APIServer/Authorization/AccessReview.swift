import KubeModel

/// The create-only review kinds, answered from the policy and the caller and never stored:
/// SelfSubjectAccessReview (`kubectl auth can-i`), SubjectAccessReview,
/// LocalSubjectAccessReview, SelfSubjectRulesReview (`kubectl auth can-i --list`) and
/// SelfSubjectReview (`kubectl auth whoami`).
enum AccessReview {
    /// The review `body` posted to `resource` by `user`, with its `status` filled in.
    static func answer(_ body: JSONValue, resource: APIResource, namespace: String?, user: UserInfo, policy: RBACPolicy) throws(APIError) -> JSONValue {
        var review = body
        guard case .object = review else { throw APIError.badRequest("the body must be a JSON object") }
        review["apiVersion"] = .string(resource.groupVersion)
        review["kind"] = .string(resource.kind)
        let spec = review["spec"] ?? .object(JSONObject())
        switch resource.plural {
        case "selfsubjectaccessreviews":
            review["status"] = status(policy, user, try attributes(spec, kind: resource.kind))
        case "subjectaccessreviews", "localsubjectaccessreviews":
            let name = spec["user"]?.stringValue ?? ""
            let groups = spec["groups"]?.arrayValue?.compactMap(\.stringValue) ?? []
            guard !name.isEmpty || !groups.isEmpty else {
                throw APIError.invalid("\(resource.kind) spec.user: Required value: at least one of user or group must be specified")
            }
            let subject = UserInfo(name: name, uid: spec["uid"]?.stringValue ?? "", groups: groups)
            let asked = try attributes(spec, kind: resource.kind)
            if resource.plural == "localsubjectaccessreviews", asked.namespace != namespace {
                throw APIError.invalid("\(resource.kind) spec.resourceAttributes.namespace: Invalid value: \"\(asked.namespace)\": must match metadata.namespace")
            }
            review["status"] = status(policy, subject, asked)
        case "selfsubjectrulesreviews":
            review["status"] = rulesStatus(policy.rules(for: user, namespace: spec["namespace"]?.stringValue ?? ""))
        case "selfsubjectreviews":
            review["status"] = .object(JSONObject([("userInfo", user.reviewJSON)]))
        default:
            throw APIError(code: 405, reason: "MethodNotAllowed", message: "the server does not allow this method on the requested resource")
        }
        return review
    }

    private static func attributes(_ spec: JSONValue, kind: String) throws(APIError) -> RequestAttributes {
        if let resource = spec["resourceAttributes"], case .object = resource {
            func text(_ key: String) -> String { resource[key]?.stringValue ?? "" }
            return RequestAttributes(verb: text("verb"), apiGroup: text("group"), resource: text("resource"), subresource: text("subresource"),
                                     namespace: text("namespace"), name: text("name"))
        }
        if let other = spec["nonResourceAttributes"], case .object = other {
            return RequestAttributes(verb: other["verb"]?.stringValue ?? "", path: other["path"]?.stringValue ?? "")
        }
        throw APIError.invalid("\(kind) spec.resourceAttributes: Invalid value: \"null\": exactly one of nonResourceAttributes or resourceAttributes must be specified")
    }

    private static func status(_ policy: RBACPolicy, _ user: UserInfo, _ request: RequestAttributes) -> JSONValue {
        if let reason = policy.decision(user, request) {
            return .object(JSONObject([("allowed", .bool(true)), ("reason", .string(reason))]))
        }
        return .object(JSONObject([("allowed", .bool(false))]))
    }

    private static func rulesStatus(_ rules: [RBACPolicy.Rule]) -> JSONValue {
        func strings(_ values: [String]) -> JSONValue { .array(values.map { .string($0) }) }
        var resourceRules: [JSONValue] = []
        var nonResourceRules: [JSONValue] = []
        for rule in rules {
            if rule.nonResourceURLs.isEmpty {
                var entry = JSONObject([("verbs", strings(rule.verbs)), ("apiGroups", strings(rule.apiGroups)), ("resources", strings(rule.resources))])
                if !rule.resourceNames.isEmpty { entry["resourceNames"] = strings(rule.resourceNames) }
                resourceRules.append(.object(entry))
            } else {
                nonResourceRules.append(.object(JSONObject([("verbs", strings(rule.verbs)), ("nonResourceURLs", strings(rule.nonResourceURLs))])))
            }
        }
        return .object(JSONObject([("resourceRules", .array(resourceRules)), ("nonResourceRules", .array(nonResourceRules)), ("incomplete", .bool(false))]))
    }
}
