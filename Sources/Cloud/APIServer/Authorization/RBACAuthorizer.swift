import KubeModel
import Synchronization

/// The RBAC policy in force: read from the store at start and again whenever a Role,
/// ClusterRole or binding changes, so that a request is checked against memory.
final class RBACAuthorizer: Sendable {
    private struct State {
        var policy = RBACPolicy()
        /// The store revision the policy was read at (a slower, older read never replaces it).
        var revision: Int64 = -1
    }

    private let state = Mutex(State())

    /// The storage names of the objects the policy is made of.
    static let storageNames: Set<String> = ["clusterroles.rbac.authorization.k8s.io", "roles.rbac.authorization.k8s.io",
                                            "clusterrolebindings.rbac.authorization.k8s.io", "rolebindings.rbac.authorization.k8s.io"]

    var policy: RBACPolicy { state.withLock { $0.policy } }

    /// Reads the policy's objects and puts them in force.
    func reload(from store: ObjectStore) async throws(APIError) {
        let (clusterRoles, first) = try await store.list(resource: "clusterroles.rbac.authorization.k8s.io")
        let (roles, _) = try await store.list(resource: "roles.rbac.authorization.k8s.io")
        let (clusterRoleBindings, _) = try await store.list(resource: "clusterrolebindings.rbac.authorization.k8s.io")
        let (roleBindings, _) = try await store.list(resource: "rolebindings.rbac.authorization.k8s.io")
        let policy = RBACPolicy(clusterRoles: clusterRoles, roles: roles, clusterRoleBindings: clusterRoleBindings, roleBindings: roleBindings)
        state.withLock { state in
            guard first >= state.revision else { return }
            state.policy = policy
            state.revision = first
        }
    }
}
