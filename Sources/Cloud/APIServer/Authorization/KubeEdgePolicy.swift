/// cloudcore's own RBAC: `deploy/rbac/cloudcore.yaml`, held here as well so that the embedded API
/// server installs it at start (a test keeps the two the same). Its controllers use the
/// embedded server as ``cloudcoreUser``; on a real cluster the file is applied by hand.
public enum KubeEdgePolicy {
    /// The user cloudcore's controllers are on the embedded API server.
    public static let cloudcoreUser = "system:kubeedge:cloudcore"

    /// The ClusterRole and ClusterRoleBinding, as the YAML file has them.
    public static let manifest = """
        # What cloudcore's controllers need on a Kubernetes cluster, and no more: read the objects edge
        # nodes run on, keep edge Nodes, their Leases and pod statuses, remove the pods their nodes stopped,
        # request service-account tokens for those pods, and keep KubeEdge's own kinds.
        # On a real cluster: kubectl apply -f deploy/crds/ -f deploy/rbac/cloudcore.yaml, then run cloudcore
        # as the `cloudcore` service account of the `kubeedge` namespace (or as a user bound the same way).
        # The embedded API server installs the same objects at start for its `system:kubeedge:cloudcore` user.
        apiVersion: rbac.authorization.k8s.io/v1
        kind: ClusterRole
        metadata:
          name: system:kubeedge:cloudcore
          labels: {app.kubernetes.io/part-of: kubeedge}
        rules:
        - apiGroups: [""]
          resources: [nodes]
          verbs: [get, list, watch, create, update, patch]
        - apiGroups: [""]
          resources: [nodes/status, pods/status]
          verbs: [get, update, patch]
        - apiGroups: [""]
          resources: [pods]
          verbs: [get, list, watch, update, patch, delete]
        - apiGroups: [""]
          resources: [configmaps, secrets, services, endpoints, namespaces]
          verbs: [get, list, watch]
        - apiGroups: [""]
          resources: [serviceaccounts/token]
          verbs: [create]
        - apiGroups: [""]
          resources: [events]
          verbs: [create, update, patch]
        - apiGroups: [coordination.k8s.io]
          resources: [leases]
          verbs: [get, list, watch, create, update, patch, delete]
        - apiGroups: [devices.kubeedge.io]
          resources: [devices, devicemodels]
          verbs: [get, list, watch, update, patch]
        - apiGroups: [devices.kubeedge.io]
          resources: [devices/status]
          verbs: [get, update, patch]
        - apiGroups: [reliablesyncs.kubeedge.io]
          resources: [objectsyncs, clusterobjectsyncs, objectsyncs/status, clusterobjectsyncs/status]
          verbs: [get, list, watch, create, update, patch, delete]
        ---
        apiVersion: rbac.authorization.k8s.io/v1
        kind: ClusterRoleBinding
        metadata:
          name: system:kubeedge:cloudcore
          labels: {app.kubernetes.io/part-of: kubeedge}
        roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:kubeedge:cloudcore"}
        subjects:
        - {apiGroup: rbac.authorization.k8s.io, kind: User, name: "system:kubeedge:cloudcore"}
        - {kind: ServiceAccount, name: cloudcore, namespace: kubeedge}
        """
}
