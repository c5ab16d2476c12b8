/// The ClusterRoles and ClusterRoleBindings a Kubernetes API server creates at start, as
/// `kubectl get clusterroles` shows them on a real cluster: `cluster-admin` (bound to the
/// `system:masters` group, which the admin kubeconfig's user is in), the aggregated `admin`,
/// `edit` and `view` with the `system:aggregate-to-*` roles that carry their rules, and what
/// every authenticated user may do (discovery, public information, asking what they may do).
/// Missing ones are created at start; a stored one is left as it is.
enum BootstrapPolicy {
    static let clusterRoles = [
        """
        apiVersion: rbac.authorization.k8s.io/v1
        kind: ClusterRole
        metadata: {name: cluster-admin, labels: {kubernetes.io/bootstrapping: rbac-defaults}}
        rules:
        - {apiGroups: ["*"], resources: ["*"], verbs: ["*"]}
        - {nonResourceURLs: ["*"], verbs: ["*"]}
        """,
        """
        apiVersion: rbac.authorization.k8s.io/v1
        kind: ClusterRole
        metadata: {name: system:discovery, labels: {kubernetes.io/bootstrapping: rbac-defaults}}
        rules:
        - nonResourceURLs: [/api, /api/*, /apis, /apis/*, /healthz, /livez, /openapi, /openapi/*, /readyz, /version, /version/]
          verbs: [get]
        """,
        """
        apiVersion: rbac.authorization.k8s.io/v1
        kind: ClusterRole
        metadata: {name: system:public-info-viewer, labels: {kubernetes.io/bootstrapping: rbac-defaults}}
        rules:
        - {nonResourceURLs: [/healthz, /livez, /readyz, /version, /version/], verbs: [get]}
        """,
        """
        apiVersion: rbac.authorization.k8s.io/v1
        kind: ClusterRole
        metadata: {name: system:basic-user, labels: {kubernetes.io/bootstrapping: rbac-defaults}}
        rules:
        - {apiGroups: [authorization.k8s.io], resources: [selfsubjectaccessreviews, selfsubjectrulesreviews], verbs: [create]}
        - {apiGroups: [authentication.k8s.io], resources: [selfsubjectreviews], verbs: [create]}
        """,
        """
        apiVersion: rbac.authorization.k8s.io/v1
        kind: ClusterRole
        metadata: {name: admin, labels: {kubernetes.io/bootstrapping: rbac-defaults}}
        aggregationRule:
          clusterRoleSelectors: [{matchLabels: {rbac.authorization.k8s.io/aggregate-to-admin: "true"}}]
        rules: []
        """,
        """
        apiVersion: rbac.authorization.k8s.io/v1
        kind: ClusterRole
        metadata: {name: edit, labels: {kubernetes.io/bootstrapping: rbac-defaults, rbac.authorization.k8s.io/aggregate-to-admin: "true"}}
        aggregationRule:
          clusterRoleSelectors: [{matchLabels: {rbac.authorization.k8s.io/aggregate-to-edit: "true"}}]
        rules: []
        """,
        """
        apiVersion: rbac.authorization.k8s.io/v1
        kind: ClusterRole
        metadata: {name: view, labels: {kubernetes.io/bootstrapping: rbac-defaults, rbac.authorization.k8s.io/aggregate-to-edit: "true"}}
        aggregationRule:
          clusterRoleSelectors: [{matchLabels: {rbac.authorization.k8s.io/aggregate-to-view: "true"}}]
        rules: []
        """,
        """
        apiVersion: rbac.authorization.k8s.io/v1
        kind: ClusterRole
        metadata: {name: system:aggregate-to-admin, labels: {kubernetes.io/bootstrapping: rbac-defaults, rbac.authorization.k8s.io/aggregate-to-admin: "true"}}
        rules:
        - {apiGroups: [authorization.k8s.io], resources: [localsubjectaccessreviews], verbs: [create]}
        - apiGroups: [rbac.authorization.k8s.io]
          resources: [rolebindings, roles]
          verbs: [create, delete, deletecollection, get, list, patch, update, watch]
        """,
        """
        apiVersion: rbac.authorization.k8s.io/v1
        kind: ClusterRole
        metadata: {name: system:aggregate-to-edit, labels: {kubernetes.io/bootstrapping: rbac-defaults, rbac.authorization.k8s.io/aggregate-to-edit: "true"}}
        rules:
        - apiGroups: [""]
          resources: [pods/attach, pods/exec, pods/portforward, pods/proxy, secrets, services/proxy]
          verbs: [get, list, watch]
        - {apiGroups: [""], resources: [serviceaccounts], verbs: [impersonate]}
        - apiGroups: [""]
          resources: [pods, pods/attach, pods/exec, pods/portforward, pods/proxy]
          verbs: [create, delete, deletecollection, patch, update]
        - {apiGroups: [""], resources: [pods/eviction], verbs: [create]}
        - apiGroups: [""]
          resources: [configmaps, events, persistentvolumeclaims, replicationcontrollers, replicationcontrollers/scale, secrets, serviceaccounts, services, services/proxy]
          verbs: [create, delete, deletecollection, patch, update]
        - {apiGroups: [""], resources: [serviceaccounts/token], verbs: [create]}
        - apiGroups: [apps]
          resources: [daemonsets, deployments, deployments/rollback, deployments/scale, replicasets, replicasets/scale, statefulsets, statefulsets/scale]
          verbs: [create, delete, deletecollection, patch, update]
        - {apiGroups: [autoscaling], resources: [horizontalpodautoscalers], verbs: [create, delete, deletecollection, patch, update]}
        - {apiGroups: [batch], resources: [cronjobs, jobs], verbs: [create, delete, deletecollection, patch, update]}
        - {apiGroups: [networking.k8s.io], resources: [ingresses, networkpolicies], verbs: [create, delete, deletecollection, patch, update]}
        - {apiGroups: [policy], resources: [poddisruptionbudgets], verbs: [create, delete, deletecollection, patch, update]}
        - {apiGroups: [coordination.k8s.io], resources: [leases], verbs: [create, delete, deletecollection, get, list, patch, update, watch]}
        """,
        """
        apiVersion: rbac.authorization.k8s.io/v1
        kind: ClusterRole
        metadata: {name: system:aggregate-to-view, labels: {kubernetes.io/bootstrapping: rbac-defaults, rbac.authorization.k8s.io/aggregate-to-view: "true"}}
        rules:
        - apiGroups: [""]
          resources: [configmaps, endpoints, persistentvolumeclaims, persistentvolumeclaims/status, pods, replicationcontrollers, replicationcontrollers/scale, serviceaccounts, services, services/status]
          verbs: [get, list, watch]
        - apiGroups: [""]
          resources: [bindings, events, limitranges, namespaces/status, pods/log, pods/status, replicationcontrollers/status, resourcequotas, resourcequotas/status]
          verbs: [get, list, watch]
        - {apiGroups: [""], resources: [namespaces], verbs: [get, list, watch]}
        - {apiGroups: [discovery.k8s.io], resources: [endpointslices], verbs: [get, list, watch]}
        - apiGroups: [apps]
          resources: [controllerrevisions, daemonsets, daemonsets/status, deployments, deployments/scale, deployments/status, replicasets, replicasets/scale, replicasets/status, statefulsets, statefulsets/scale, statefulsets/status]
          verbs: [get, list, watch]
        - {apiGroups: [autoscaling], resources: [horizontalpodautoscalers, horizontalpodautoscalers/status], verbs: [get, list, watch]}
        - {apiGroups: [batch], resources: [cronjobs, cronjobs/status, jobs, jobs/status], verbs: [get, list, watch]}
        - {apiGroups: [networking.k8s.io], resources: [ingresses, ingresses/status, networkpolicies], verbs: [get, list, watch]}
        - {apiGroups: [policy], resources: [poddisruptionbudgets, poddisruptionbudgets/status], verbs: [get, list, watch]}
        """,
        // The embedded scheduler's user: what kube-scheduler's bootstrap role grants it for pods.
        """
        apiVersion: rbac.authorization.k8s.io/v1
        kind: ClusterRole
        metadata: {name: "system:kube-scheduler", labels: {kubernetes.io/bootstrapping: rbac-defaults}}
        rules:
        - {apiGroups: [""], resources: [pods, nodes, namespaces], verbs: [get, list, watch]}
        - {apiGroups: [""], resources: [pods/binding, bindings], verbs: [create]}
        - {apiGroups: [""], resources: [pods/status], verbs: [patch, update]}
        - {apiGroups: ["", events.k8s.io], resources: [events], verbs: [create, patch, update]}
        """,
        // The embedded controller manager's controllers, as kube's bootstrap roles grant them.
        """
        apiVersion: rbac.authorization.k8s.io/v1
        kind: ClusterRole
        metadata: {name: "system:controller:replicaset-controller", labels: {kubernetes.io/bootstrapping: rbac-defaults}}
        rules:
        - {apiGroups: [apps, extensions], resources: [replicasets], verbs: [get, list, update, watch]}
        - {apiGroups: [apps, extensions], resources: [replicasets/status], verbs: [patch, update]}
        - {apiGroups: [apps, extensions], resources: [replicasets/finalizers], verbs: [update]}
        - {apiGroups: [""], resources: [pods], verbs: [create, delete, list, patch, watch]}
        - {apiGroups: ["", events.k8s.io], resources: [events], verbs: [create, patch, update]}
        """,
        // kube's role, with `patch` where kube's controller uses `update` (this one patches).
        """
        apiVersion: rbac.authorization.k8s.io/v1
        kind: ClusterRole
        metadata: {name: "system:controller:deployment-controller", labels: {kubernetes.io/bootstrapping: rbac-defaults}}
        rules:
        - {apiGroups: [apps, extensions], resources: [deployments], verbs: [get, list, patch, update, watch]}
        - {apiGroups: [apps, extensions], resources: [deployments/status], verbs: [patch, update]}
        - {apiGroups: [apps, extensions], resources: [deployments/finalizers], verbs: [update]}
        - {apiGroups: [apps, extensions], resources: [replicasets], verbs: [create, delete, get, list, patch, update, watch]}
        - {apiGroups: [""], resources: [pods], verbs: [get, list, update, watch]}
        - {apiGroups: ["", events.k8s.io], resources: [events], verbs: [create, patch, update]}
        """,
        // kube's role, with `patch` on the status (this controller patches it).
        """
        apiVersion: rbac.authorization.k8s.io/v1
        kind: ClusterRole
        metadata: {name: "system:controller:daemon-set-controller", labels: {kubernetes.io/bootstrapping: rbac-defaults}}
        rules:
        - {apiGroups: [apps, extensions], resources: [daemonsets], verbs: [get, list, watch]}
        - {apiGroups: [apps, extensions], resources: [daemonsets/status], verbs: [patch, update]}
        - {apiGroups: [apps, extensions], resources: [daemonsets/finalizers], verbs: [update]}
        - {apiGroups: [""], resources: [nodes], verbs: [list, watch]}
        - {apiGroups: [""], resources: [pods], verbs: [create, delete, list, patch, watch]}
        - {apiGroups: [""], resources: [pods/binding], verbs: [create]}
        - {apiGroups: [apps], resources: [controllerrevisions], verbs: [create, delete, get, list, patch, update, watch]}
        - {apiGroups: ["", events.k8s.io], resources: [events], verbs: [create, patch, update]}
        """,
        // kube's job-controller role, with `delete` on jobs (kube's ttl-after-finished-controller has it).
        """
        apiVersion: rbac.authorization.k8s.io/v1
        kind: ClusterRole
        metadata: {name: "system:controller:job-controller", labels: {kubernetes.io/bootstrapping: rbac-defaults}}
        rules:
        - {apiGroups: [batch], resources: [jobs], verbs: [delete, get, list, patch, update, watch]}
        - {apiGroups: [batch], resources: [jobs/status], verbs: [patch, update]}
        - {apiGroups: [batch], resources: [jobs/finalizers], verbs: [update]}
        - {apiGroups: [""], resources: [pods], verbs: [create, delete, list, patch, watch]}
        - {apiGroups: ["", events.k8s.io], resources: [events], verbs: [create, patch, update]}
        """,
        """
        apiVersion: rbac.authorization.k8s.io/v1
        kind: ClusterRole
        metadata: {name: "system:controller:cronjob-controller", labels: {kubernetes.io/bootstrapping: rbac-defaults}}
        rules:
        - {apiGroups: [batch], resources: [cronjobs], verbs: [get, list, update, watch]}
        - {apiGroups: [batch], resources: [jobs], verbs: [create, delete, get, list, patch, update, watch]}
        - {apiGroups: [batch], resources: [cronjobs/status], verbs: [patch, update]}
        - {apiGroups: [batch], resources: [cronjobs/finalizers], verbs: [update]}
        - {apiGroups: [""], resources: [pods], verbs: [delete, list]}
        - {apiGroups: ["", events.k8s.io], resources: [events], verbs: [create, patch, update]}
        """,
    ]

    /// The user the embedded controller manager acts as.
    static let controllerManagerUser = "system:kube-controller-manager"

    /// The user the embedded scheduler acts as.
    static let schedulerUser = "system:kube-scheduler"

    static let clusterRoleBindings = [
        binding("cluster-admin", role: "cluster-admin", groups: [UserInfo.masters]),
        binding("system:discovery", role: "system:discovery", groups: [UserInfo.authenticated]),
        binding("system:public-info-viewer", role: "system:public-info-viewer", groups: [UserInfo.authenticated, "system:unauthenticated"]),
        binding("system:basic-user", role: "system:basic-user", groups: [UserInfo.authenticated]),
        binding("system:kube-scheduler", role: "system:kube-scheduler", users: [schedulerUser]),
        binding("system:controller:replicaset-controller", role: "system:controller:replicaset-controller", users: [controllerManagerUser]),
        binding("system:controller:deployment-controller", role: "system:controller:deployment-controller", users: [controllerManagerUser]),
        binding("system:controller:daemon-set-controller", role: "system:controller:daemon-set-controller", users: [controllerManagerUser]),
        binding("system:controller:job-controller", role: "system:controller:job-controller", users: [controllerManagerUser]),
        binding("system:controller:cronjob-controller", role: "system:controller:cronjob-controller", users: [controllerManagerUser]),
    ]

    private static func binding(_ name: String, role: String, groups: [String] = [], users: [String] = []) -> String {
        """
        apiVersion: rbac.authorization.k8s.io/v1
        kind: ClusterRoleBinding
        metadata: {name: "\(name)", labels: {kubernetes.io/bootstrapping: rbac-defaults}, annotations: {rbac.authorization.kubernetes.io/autoupdate: "true"}}
        roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "\(role)"}
        subjects:
        \((groups.map { "- {apiGroup: rbac.authorization.k8s.io, kind: Group, name: \"\($0)\"}" }
            + users.map { "- {apiGroup: rbac.authorization.k8s.io, kind: User, name: \"\($0)\"}" }).joined(separator: "\n"))
        """
    }
}
