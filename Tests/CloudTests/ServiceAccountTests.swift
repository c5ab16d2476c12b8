@testable import Cloud
import Foundation
import KubeModel
import Testing
import TestSupport
import Transport

/// Service accounts on the embedded server, through kubectl and the official Python client:
/// a `default` account and `kube-root-ca.crt` in every namespace, `kubectl create token`,
/// tokens that authenticate as the account (and only for their audience, life, account and pod),
/// and TokenReview.
@Suite struct ServiceAccountTests {
    @Test func kubectlCreateTokenGivesATokenThatActsAsTheServiceAccountWithinItsRoles() async throws {
        let server = try await EmbeddedServer(secure: true)
        defer { removeTemporaryDirectory(server.directory) }
        // Every namespace has its default account and the cluster's CA, new ones included.
        #expect(try await server.kubectl("get", "serviceaccount", "default", "-o", "name").output.contains("serviceaccount/default"))
        #expect(try await server.kubectl("create", "namespace", "team").status == 0)
        #expect(try await server.kubectl("get", "serviceaccount", "default", "-n", "team", "-o", "name").output.contains("serviceaccount/default"))
        let rootCA = try await server.kubectl("get", "configmap", "kube-root-ca.crt", "-n", "team", "-o", "jsonpath={.data.ca\\.crt}")
        #expect(rootCA.output.hasPrefix("-----BEGIN CERTIFICATE-----"), "\(rootCA.output)")

        let created = try await server.kubectl("create", "token", "default")
        #expect(created.status == 0, "\(created.output)")
        let token = created.output.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(token.split(separator: ".").count == 3, "a compact JWT")
        let account = try server.writeKubeconfig(for: "default-sa", token: token)
        let whoami = try await server.kubectl("auth", "whoami", "-o", "jsonpath={.status.userInfo.username} {.status.userInfo.groups}", kubeconfig: account)
        #expect(whoami.output.hasPrefix("system:serviceaccount:default:default ") && whoami.output.contains("system:serviceaccounts:default"), "\(whoami.output)")
        let refused = try await server.kubectl("get", "pods", kubeconfig: account)
        #expect(refused.output.contains(#"User "system:serviceaccount:default:default" cannot list resource "pods""#), "\(refused.output)")
        #expect(try await server.kubectl("create", "rolebinding", "sa-view", "--clusterrole=view", "--serviceaccount=default:default").status == 0)
        #expect(try await server.kubectl("get", "pods", kubeconfig: account).status == 0)
        #expect(try await server.kubectl("get", "pods", "-n", "team", kubeconfig: account).status != 0, "the binding is in default only")

        // Bad requests, in kube-apiserver's words.
        let short = try await server.kubectl("create", "token", "default", "--duration=5m")
        #expect(short.status != 0 && short.output.contains("may not specify a duration less than 10 minutes"), "\(short.output)")
        let missing = try await server.kubectl("create", "token", "nobody")
        #expect(missing.output.contains(#"serviceaccounts "nobody" not found"#), "\(missing.output)")

        // A token for another audience, one past its expiry, one of a deleted account: 401.
        let other = try await server.kubectl("create", "token", "default", "--audience=https://vault.example")
        let otherConfig = try server.writeKubeconfig(for: "other", token: other.output.trimmingCharacters(in: .whitespacesAndNewlines))
        #expect(try await server.kubectl("get", "pods", kubeconfig: otherConfig).output.contains("Unauthorized"))
        let uid = try await server.kubectl("get", "serviceaccount", "default", "-o", "jsonpath={.metadata.uid}").output
        let signer = ServiceAccountTokens(signer: server.credentials!.serviceAccountSigner)
        let expired = try signer.issue(.init(namespace: "default", name: "default", uid: uid, audiences: [ServiceAccountTokens.issuer],
                                             expiry: Date().addingTimeInterval(-60)), now: Date().addingTimeInterval(-3600))
        #expect(try await server.kubectl("get", "pods", kubeconfig: try server.writeKubeconfig(for: "expired", token: expired)).output.contains("Unauthorized"))
        let forged = try ServiceAccountTokens(signer: try CertificateAuthority.create(commonName: "forger"))
            .issue(.init(namespace: "default", name: "default", uid: uid, audiences: [ServiceAccountTokens.issuer], expiry: Date().addingTimeInterval(600)), now: Date())
        #expect(try await server.kubectl("get", "pods", kubeconfig: try server.writeKubeconfig(for: "forged", token: forged)).output.contains("Unauthorized"))

        // A token bound to a pod lives as long as the pod.
        #expect(try await server.kubectl("run", "holder", "--image=busybox", "--restart=Never").status == 0)
        let bound = try await server.kubectl("create", "token", "default", "--bound-object-kind=Pod", "--bound-object-name=holder")
        #expect(bound.status == 0, "\(bound.output)")
        let boundConfig = try server.writeKubeconfig(for: "bound", token: bound.output.trimmingCharacters(in: .whitespacesAndNewlines))
        #expect(try await server.kubectl("get", "pods", kubeconfig: boundConfig).status == 0)
        #expect(try await server.kubectl("delete", "pod", "holder", "--wait=false").status == 0)
        #expect(try await server.kubectl("get", "pods", kubeconfig: boundConfig).output.contains("Unauthorized"))

        // TokenReview through the official Python client.
        let python = try await runProcessOffPool("/usr/bin/env", ["python3", "-c", """
            import sys
            from kubernetes import client, config
            config.load_kube_config(config_file=sys.argv[1])
            api = client.AuthenticationV1Api()
            for token in [sys.argv[2], "not-a-token"]:
                review = api.create_token_review(client.V1TokenReview(spec=client.V1TokenReviewSpec(token=token)))
                print("review", review.status.authenticated, review.status.user.username if review.status.user else None)
            """, server.directory + "/kubeconfig", token])
        #expect(python.output.contains("review True system:serviceaccount:default:default"), "\(python.output)")
        #expect(python.output.contains("review False None"), "\(python.output)")

        // Deleting the account ends its tokens.
        #expect(try await server.kubectl("delete", "serviceaccount", "default").status == 0)
        #expect(try await server.kubectl("get", "pods", kubeconfig: account).output.contains("Unauthorized"))
        await server.server.stop()
    }

    @Test func serviceAccountAdmissionMountsTheAPIAccessVolumeAsKubeAPIServerDoes() async throws {
        let server = try await EmbeddedServer(secure: true)
        defer { removeTemporaryDirectory(server.directory) }
        let applied = try await server.kubectl("apply", "-f", "@input", input: """
            apiVersion: v1
            kind: Pod
            metadata: {name: plain}
            spec:
              initContainers: [{name: init, image: busybox}]
              containers:
              - {name: main, image: busybox}
              - name: own
                image: busybox
                volumeMounts: [{name: mine, mountPath: /var/run/secrets/kubernetes.io/serviceaccount}]
              volumes: [{name: mine, emptyDir: {}}]
            ---
            apiVersion: v1
            kind: Pod
            metadata: {name: opted-out}
            spec:
              automountServiceAccountToken: false
              containers: [{name: main, image: busybox}]
            ---
            apiVersion: v1
            kind: ServiceAccount
            metadata: {name: quiet}
            automountServiceAccountToken: false
            ---
            apiVersion: v1
            kind: Pod
            metadata: {name: quiet-pod}
            spec:
              serviceAccountName: quiet
              containers: [{name: main, image: busybox}]
            ---
            apiVersion: v1
            kind: Pod
            metadata: {name: quiet-but-mounted}
            spec:
              serviceAccountName: quiet
              automountServiceAccountToken: true
              containers: [{name: main, image: busybox}]

            """)
        #expect(applied.status == 0, "\(applied.output)")

        // The official Python client reads the pod as kube-apiserver's admission leaves it.
        let python = try await runProcessOffPool("/usr/bin/env", ["python3", "-c", """
            import sys
            from kubernetes import client, config
            config.load_kube_config(config_file=sys.argv[1])
            core = client.CoreV1Api()
            for name in ["plain", "opted-out", "quiet-pod", "quiet-but-mounted"]:
                pod = core.read_namespaced_pod(name, "default")
                access = [v for v in pod.spec.volumes or [] if v.name.startswith("kube-api-access-")]
                print(name, "account=%s/%s" % (pod.spec.service_account_name, pod.spec.service_account), "volumes=%d" % len(access))
                for volume in access:
                    p = volume.projected
                    token, ca, ns = p.sources
                    print(name, "suffix=%d" % len(volume.name[len("kube-api-access-"):]), "mode=%o" % p.default_mode,
                          "token=%s:%d" % (token.service_account_token.path, token.service_account_token.expiration_seconds),
                          "ca=%s:%s>%s" % (ca.config_map.name, ca.config_map.items[0].key, ca.config_map.items[0].path),
                          "ns=%s:%s" % (ns.downward_api.items[0].path, ns.downward_api.items[0].field_ref.field_path))
                for c in (pod.spec.init_containers or []) + pod.spec.containers:
                    for m in c.volume_mounts or []:
                        if m.mount_path == "/var/run/secrets/kubernetes.io/serviceaccount":
                            print(name, "mount", c.name, m.name.startswith("kube-api-access-"), m.read_only)
            """, server.directory + "/kubeconfig"])
        #expect(python.status == 0, "\(python.output)")
        let lines = Set(python.output.split(separator: "\n").map(String.init))
        for expected in [
            "plain account=default/default volumes=1",
            "plain suffix=5 mode=644 token=token:3607 ca=kube-root-ca.crt:ca.crt>ca.crt ns=namespace:metadata.namespace",
            "plain mount init True True", "plain mount main True True", "plain mount own False None",
            "opted-out account=default/default volumes=0", "quiet-pod account=quiet/quiet volumes=0",
            "quiet-but-mounted account=quiet/quiet volumes=1", "quiet-but-mounted mount main True True",
        ] {
            #expect(lines.contains(expected), "\(expected) in \(python.output)")
        }

        // A pod naming an account that does not exist is refused, and nothing is stored.
        let ghost = try await server.kubectl("run", "ghost", "--image=busybox", "--restart=Never", "--overrides", #"{"spec":{"serviceAccountName":"ghost"}}"#)
        #expect(ghost.status != 0, "\(ghost.output)")
        #expect(ghost.output.contains(#"pods "ghost" is forbidden: error looking up service account default/ghost: serviceaccount "ghost" not found"#), "\(ghost.output)")
        #expect(try await server.kubectl("get", "pod", "ghost").status != 0)
        await server.server.stop()
    }
}
