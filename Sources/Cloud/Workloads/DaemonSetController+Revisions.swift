import Foundation
import KubeModel

extension DaemonSetController {
    /// The hash of the DaemonSet's current template: that of the ControllerRevision holding it
    /// (which becomes the newest revision if it was an older one, as after `rollout undo`), or of
    /// one created now. `nil` if it could not be recorded (the pass is skipped).
    func currentRevisionHash(_ daemonSet: JSONValue, revisions: [JSONValue]) async -> String? {
        let template = daemonSet[path: ["spec", "template"]] ?? .null
        let highest = revisions.compactMap { $0["revision"]?.int64Value }.max() ?? 0
        let namespace = daemonSet[path: ["metadata", "namespace"]]?.stringValue ?? "default"
        if let existing = revisions.first(where: { Self.template(of: $0).map { PodTemplateHash.equalIgnoringHash($0, template) } ?? false }) {
            let name = existing[path: ["metadata", "name"]]?.stringValue ?? ""
            let revision = existing["revision"]?.int64Value ?? 0
            if revision < highest {
                do {
                    _ = try await client.patch(Self.revisionResource, namespace: namespace, name: name,
                                               .object(JSONObject([("revision", .integer(Int(highest + 1)))])))
                } catch {
                    count { $0.failures += 1 }
                }
            }
            return existing[path: ["metadata", "labels", Self.hashLabel]]?.stringValue ?? Self.suffix(of: name, daemonSet: daemonSet)
        }
        let collisionCount = daemonSet[path: ["status", "collisionCount"]]?.int64Value
        let hash = PodTemplateHash.of(template, collisionCount: collisionCount)
        let name = (daemonSet[path: ["metadata", "name"]]?.stringValue ?? "") + "-" + hash
        var data = template
        data["$patch"] = .string("replace")
        var labels = template[path: ["metadata", "labels"]]?.objectValue ?? JSONObject()
        labels[Self.hashLabel] = .string(hash)
        var metadata = JSONObject([
            ("name", .string(name)), ("namespace", .string(namespace)), ("labels", .object(labels)),
            ("ownerReferences", .array([.object(JSONObject([
                ("apiVersion", .string("apps/v1")), ("kind", .string("DaemonSet")), ("name", daemonSet[path: ["metadata", "name"]] ?? .null),
                ("uid", daemonSet[path: ["metadata", "uid"]] ?? .null), ("controller", .bool(true)), ("blockOwnerDeletion", .bool(true)),
            ]))])),
        ])
        if let annotations = daemonSet[path: ["metadata", "annotations"]] { metadata["annotations"] = annotations }
        let revision = JSONValue.object(JSONObject([
            ("apiVersion", .string("apps/v1")), ("kind", .string("ControllerRevision")), ("metadata", .object(metadata)),
            ("data", .object(JSONObject([("spec", .object(JSONObject([("template", data)])))]))),
            ("revision", .integer(Int(highest + 1))),
        ]))
        do {
            _ = try await client.create(Self.revisionResource, namespace: namespace, revision)
            count { $0.revisionsCreated += 1 }
            return hash
        } catch let error as APIError where error.code == 409 {
            // The name is taken: by this template (the informer is behind), or a collision.
            if let taken = try? await client.get(Self.revisionResource, namespace: namespace, name: name),
               Self.template(of: taken).map({ PodTemplateHash.equalIgnoringHash($0, template) }) == true {
                return hash
            }
            do {
                _ = try await client.patch(Self.daemonSetResource, namespace: namespace, name: daemonSet[path: ["metadata", "name"]]?.stringValue ?? "",
                                           .object(JSONObject([("status", .object(JSONObject([("collisionCount", .integer(Int((collisionCount ?? 0) + 1)))])))])),
                                           status: true)
            } catch {
                count { $0.failures += 1 }
            }
            return nil
        } catch {
            count { $0.failures += 1 }
            logger.warning("cannot record a daemon set revision", metadata: ["revision": "\(namespace)/\(name)", "error": "\(error)"])
            return nil
        }
    }

    /// Deletes revisions beyond `revisionHistoryLimit` (default 10) that are not current and
    /// that no pod still runs, lowest revision first.
    func cleanUpRevisions(_ daemonSet: JSONValue, revisions: [JSONValue], current: String, pods: [JSONValue]) async {
        let limit = Int(daemonSet[path: ["spec", "revisionHistoryLimit"]]?.int64Value ?? 10)
        let inUse = Set(pods.compactMap { $0[path: ["metadata", "labels", Self.hashLabel]]?.stringValue } + [current])
        let candidates = revisions
            .filter { !inUse.contains($0[path: ["metadata", "labels", Self.hashLabel]]?.stringValue ?? "") }
            .sorted { ($0["revision"]?.int64Value ?? 0) < ($1["revision"]?.int64Value ?? 0) }
        guard candidates.count > limit else { return }
        for revision in candidates.prefix(candidates.count - limit) {
            let namespace = revision[path: ["metadata", "namespace"]]?.stringValue ?? "default"
            do {
                try await client.delete(Self.revisionResource, namespace: namespace, name: revision[path: ["metadata", "name"]]?.stringValue ?? "")
            } catch let error as APIError where error.code == 404 {
            } catch {
                count { $0.failures += 1 }
            }
        }
    }

    /// The pod template a revision holds.
    static func template(of revision: JSONValue) -> JSONValue? {
        guard var template = revision[path: ["data", "spec", "template"]] else { return nil }
        template["$patch"] = nil
        return template
    }

    private static func suffix(of name: String, daemonSet: JSONValue) -> String {
        let prefix = (daemonSet[path: ["metadata", "name"]]?.stringValue ?? "") + "-"
        return name.hasPrefix(prefix) ? String(name.dropFirst(prefix.count)) : name
    }
}
