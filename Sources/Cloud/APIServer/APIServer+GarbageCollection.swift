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
    /// for a namespace, the namespace as it was while its contents went). A pod running on a
    /// node is deleted gracefully (``gracePeriod(of:key:requested:)``): marked, for its node to
    /// stop it and send the final delete.
    func deleteCollecting(_ key: ObjectKey, resourceVersion: String?, policy: Propagation, gracePeriod requested: Int64? = nil) async throws -> JSONValue {
        guard let owner = try await store.get(key) else { throw APIError.notFound(key.resource, key.name) }
        let uid = owner[path: ["metadata", "uid"]]?.stringValue ?? ""
        let grace = Self.gracePeriod(of: owner, key: key, requested: requested)
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
            // Pods still stopping on their nodes (or objects held by finalizers) keep it.
            try await finishNamespaceIfEmpty(key.name)
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
            return try await store.delete(key, resourceVersion: resourceVersion, gracePeriodSeconds: grace)
        case .foreground:
            for (dependent, _) in try await store.dependents(ofUID: uid) {
                _ = try? await deleteCollecting(dependent, resourceVersion: nil, policy: .foreground)
            }
            return try await store.delete(key, resourceVersion: resourceVersion, gracePeriodSeconds: grace)
        case .background:
            let deleted = try await store.delete(key, resourceVersion: resourceVersion, gracePeriodSeconds: grace)
            for (dependent, _) in try await store.dependents(ofUID: uid) {
                _ = try? await deleteCollecting(dependent, resourceVersion: nil, policy: .background)
            }
            return deleted
        }
    }

    /// The grace period a delete gives `object`, as kube-apiserver's pod strategy decides it:
    /// for a pod bound to a node that has not finished, the one `requested` (DeleteOptions'
    /// `gracePeriodSeconds`, a negative one counting as 1) or else its
    /// `terminationGracePeriodSeconds` (30 by default); 0 (removed at once) for everything else.
    static func gracePeriod(of object: JSONValue, key: ObjectKey, requested: Int64?) -> Int64 {
        guard key.resource == "pods", let node = object[path: ["spec", "nodeName"]]?.stringValue, !node.isEmpty else { return 0 }
        let phase = object[path: ["status", "phase"]]?.stringValue
        guard phase != "Succeeded", phase != "Failed" else { return 0 }
        let period = requested ?? object[path: ["spec", "terminationGracePeriodSeconds"]]?.int64Value ?? 30
        return period < 0 ? 1 : period
    }

    /// Garbage collection of an object created with owners that are all gone already (a
    /// controller that had not yet seen its owner's deletion): it is deleted at once, as the
    /// garbage collector deletes dependents whose owners no longer exist. Owners are looked up
    /// by kind and name in the object's namespace (or cluster-wide), and must have the uid named.
    func collectIfOwnersAreGone(_ key: ObjectKey, _ object: JSONValue) async throws {
        guard let owners = object[path: ["metadata", "ownerReferences"]]?.arrayValue, !owners.isEmpty else { return }
        let resources = served.snapshot.resources
        for owner in owners {
            guard let kind = owner["kind"]?.stringValue, let apiVersion = owner["apiVersion"]?.stringValue,
                  let name = owner["name"]?.stringValue, let uid = owner["uid"]?.stringValue,
                  let resource = resources.first(where: { $0.kind == kind && $0.groupVersion == apiVersion }) else { return }  // unknown: keep it
            let stored = try await store.get(ObjectKey(resource: resource.storageName, namespace: resource.namespaced ? key.namespace : "", name: name))
            if stored?[path: ["metadata", "uid"]]?.stringValue == uid { return }
        }
        _ = try? await deleteCollecting(key, resourceVersion: nil, policy: .background)
    }

    /// Removes namespace `name` if it is being deleted and nothing is left in it.
    func finishNamespaceIfEmpty(_ name: String) async throws {
        let key = ObjectKey(resource: "namespaces", namespace: "", name: name)
        guard let namespace = try await store.get(key), namespace[path: ["metadata", "deletionTimestamp"]] != nil,
              try await store.objects(inNamespace: name).isEmpty else { return }
        _ = try? await store.delete(key)
    }
}
