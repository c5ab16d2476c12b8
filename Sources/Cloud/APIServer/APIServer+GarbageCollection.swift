import Foundation
import KubeModel

/// Garbage collection as kube-apiserver's controllers do it, done in the delete itself: an
/// owner's dependents (objects whose `ownerReferences` name its uid) are deleted with it
/// (`Background`, the default, and `Foreground`, which deletes them before the owner) or left
/// without the reference (`Orphan`); deleting a namespace deletes everything in it, then it.
extension APIServer {
    enum Propagation: String {
        case background = "Background", foreground = "Foreground", orphan = "Orphan"
    }

    /// The propagation policy of a delete: DeleteOptions' `propagationPolicy` (or the legacy
    /// `orphanDependents`), else the query's, else Background.
    static func propagation(options: JSONValue, query: [String: String]) throws(APIError) -> Propagation {
        if options["orphanDependents"] == .bool(true) { return .orphan }
        let text = options["propagationPolicy"]?.stringValue ?? query["propagationPolicy"] ?? "Background"
        guard let policy = Propagation(rawValue: text) else {
            throw APIError.invalid("DeleteOptions.meta.k8s.io \"\" is invalid: propagationPolicy: Unsupported value: \"\(text)\": supported values: \"Foreground\", \"Background\", \"Orphan\"")
        }
        return policy
    }

    /// Deletes `key` and what depends on it as `policy` says; returns the deleted object (or,
    /// for a namespace, the namespace as it was while its contents went).
    func deleteCollecting(_ key: ObjectKey, resourceVersion: String?, policy: Propagation) async throws -> JSONValue {
        guard let owner = try await store.get(key) else { throw APIError.notFound(key.resource, key.name) }
        let uid = owner[path: ["metadata", "uid"]]?.stringValue ?? ""
        if key.resource == "namespaces" {
            guard !["default", "kube-system", "kube-public"].contains(key.name) else {
                throw APIError(code: 403, reason: "Forbidden", message: "namespaces \"\(key.name)\" is forbidden: this namespace may not be deleted",
                               details: .object(JSONObject([("name", .string(key.name)), ("kind", .string("namespaces"))])))
            }
            // Terminating while its contents are deleted (they may have dependents elsewhere).
            var terminating = owner
            terminating.set(.string("Terminating"), at: ["status", "phase"])
            if terminating[path: ["metadata", "deletionTimestamp"]] == nil {
                terminating.set(.string(Date().formatted(.iso8601)), at: ["metadata", "deletionTimestamp"])
            }
            terminating = try await store.update(key, terminating)
            for (member, _) in try await store.objects(inNamespace: key.name) {
                _ = try? await deleteCollecting(member, resourceVersion: nil, policy: .background)
            }
            _ = try await store.delete(key)
            return terminating
        }
        switch policy {
        case .orphan:
            for (dependent, object) in try await store.dependents(ofUID: uid) {
                var orphaned = object
                let kept = (object[path: ["metadata", "ownerReferences"]]?.arrayValue ?? []).filter { $0["uid"]?.stringValue != uid }
                orphaned.set(kept.isEmpty ? nil : .array(kept), at: ["metadata", "ownerReferences"])
                _ = try? await store.update(dependent, orphaned)
            }
            return try await store.delete(key, resourceVersion: resourceVersion)
        case .foreground:
            for (dependent, _) in try await store.dependents(ofUID: uid) {
                _ = try? await deleteCollecting(dependent, resourceVersion: nil, policy: .foreground)
            }
            return try await store.delete(key, resourceVersion: resourceVersion)
        case .background:
            let deleted = try await store.delete(key, resourceVersion: resourceVersion)
            for (dependent, _) in try await store.dependents(ofUID: uid) {
                _ = try? await deleteCollecting(dependent, resourceVersion: nil, policy: .background)
            }
            return deleted
        }
    }
}
