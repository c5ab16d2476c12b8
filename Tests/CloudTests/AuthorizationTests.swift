@testable import Cloud
import Foundation
import KubeModel
import Testing
import TestSupport

/// RBAC on the embedded server: deny by default, Roles and bindings applied with kubectl,
/// kube-apiserver's 403 messages, `kubectl auth can-i` / `whoami`, impersonation, the
/// bootstrap roles, and the official Python client seeing the same refusals.
@Suite struct AuthorizationTests {
    static let aliceToken = "alice-token-0123456789abcdef"

    @Test func rulesMatchVerbsGroupsResourcesSubresourcesNamesAndPaths() throws {
        let rule = RBACPolicy.Rule(try JSONValue(parsing: #"{"apiGroups":[""],"resources":["pods","pods/log","*/status"],"verbs":["get","list"],"resourceNames":[]}"#))
        func request(_ verb: String, _ resource: String, _ subresource: String = "", group: String = "", name: String = "") -> RequestAttributes {
            RequestAttributes(verb: verb, apiGroup: group, resource: resource, subresource: subresource, namespace: "default", name: name)
        }
        #expect(rule.allows(request("get", "pods")))
        #expect(rule.allows(request("list", "pods")))
        #expect(!rule.allows(request("delete", "pods")))
        #expect(!rule.allows(request("get", "pods", group: "apps")))
        #expect(rule.allows(request("get", "pods", "log")))
        #expect(!rule.allows(request("get", "pods", "exec")), "a resource does not grant its subresources")
        #expect(rule.allows(request("get", "nodes", "status")), "*/status grants every resource's status")
        let named = RBACPolicy.Rule(try JSONValue(parsing: #"{"apiGroups":["*"],"resources":["configmaps"],"verbs":["*"],"resourceNames":["app"]}"#))
        #expect(named.allows(request("update", "configmaps", name: "app")))
        #expect(!named.allows(request("update", "configmaps", name: "other")))
        let paths = RBACPolicy.Rule(try JSONValue(parsing: #"{"nonResourceURLs":["/apis/*","/version"],"verbs":["get"]}"#))
        #expect(paths.allows(RequestAttributes(verb: "get", path: "/apis/apps/v1")))
        #expect(paths.allows(RequestAttributes(verb: "get", path: "/version")))
        #expect(!paths.allows(RequestAttributes(verb: "get", path: "/version/extra")))
        #expect(!paths.allows(RequestAttributes(verb: "post", path: "/version")))
        #expect(!paths.allows(request("get", "pods")), "path rules grant no resource")
    }

    @Test func aggregatedRolesHoldTheRulesOfTheRolesTheySelectTransitively() throws {
        let roles = try BootstrapPolicy.clusterRoles.map { try YAMLDocument.parse($0) }
        let bindings = try JSONValue(parsing: """
            [{"metadata":{"name":"v"},"roleRef":{"kind":"ClusterRole","name":"view"},"subjects":[{"kind":"User","name":"viewer"}]},
             {"metadata":{"name":"a","namespace":"team"},"roleRef":{"kind":"ClusterRole","name":"admin"},"subjects":[{"kind":"Group","name":"team-admins"}]},
             {"metadata":{"name":"s","namespace":"team"},"roleRef":{"kind":"ClusterRole","name":"edit"},"subjects":[{"kind":"ServiceAccount","name":"deployer"}]}]
            """).arrayValue!
        let policy = RBACPolicy(clusterRoles: roles, roles: [], clusterRoleBindings: [bindings[0]], roleBindings: Array(bindings[1...]))
        let viewer = UserInfo.authenticated("viewer")
        let pods = RequestAttributes(verb: "list", apiGroup: "", resource: "pods", subresource: "", namespace: "team", name: "")
        let secrets = RequestAttributes(verb: "get", apiGroup: "", resource: "secrets", subresource: "", namespace: "team", name: "")
        #expect(policy.allows(viewer, pods))
        #expect(!policy.allows(viewer, secrets), "view does not read secrets")
        let admin = UserInfo.authenticated("carol", groups: ["team-admins"])
        let roleBindings = RequestAttributes(verb: "create", apiGroup: "rbac.authorization.k8s.io", resource: "rolebindings", subresource: "", namespace: "team", name: "")
        #expect(policy.allows(admin, roleBindings), "admin's own rules")
        #expect(policy.allows(admin, secrets), "edit's rules, through admin")
        #expect(policy.allows(admin, pods), "view's rules, through edit, through admin")
        #expect(!policy.allows(admin, RequestAttributes(verb: "list", apiGroup: "", resource: "pods", subresource: "", namespace: "other", name: "")),
                "a RoleBinding grants in its namespace only")
        let deployer = UserInfo.authenticated("system:serviceaccount:team:deployer", groups: ["system:serviceaccounts"])
        #expect(policy.allows(deployer, RequestAttributes(verb: "create", apiGroup: "", resource: "pods", subresource: "", namespace: "team", name: "")))
        #expect(!policy.allows(UserInfo.authenticated("system:serviceaccount:other:deployer"), secrets), "a service account of another namespace")
        #expect(policy.decision(deployer, secrets) == #"RBAC: allowed by RoleBinding "s/team" of ClusterRole "edit" to ServiceAccount "deployer/team""#)
    }

    @Test func kubectlUsersGetWhatTheirRolesAllowAndKubeAPIServersRefusalsOtherwise() async throws {
        let server = try await EmbeddedServer(secure: true, users: [Self.aliceToken: .authenticated("alice", groups: ["developers"])])
        defer { removeTemporaryDirectory(server.directory) }
        let alice = try server.writeKubeconfig(for: "alice", token: Self.aliceToken)
        #expect(try await server.kubectl("create", "configmap", "app", "--from-literal=k=v").status == 0, "the admin is cluster-admin")
        #expect(try await server.kubectl("create", "secret", "generic", "db", "--from-literal=password=s3cret").status == 0)

        // Nothing is allowed until a binding says so; discovery and whoami are.
        let denied = try await server.kubectl("get", "configmaps", kubeconfig: alice)
        #expect(denied.status != 0)
        #expect(denied.output.contains(#"Error from server (Forbidden): configmaps is forbidden: User "alice" cannot list resource "configmaps" in API group "" in the namespace "default""#),
                "\(denied.output)")
        let whoami = try await server.kubectl("auth", "whoami", kubeconfig: alice)
        #expect(whoami.status == 0 && whoami.output.contains("alice") && whoami.output.contains("developers"), "\(whoami.output)")
        #expect(try await server.kubectl("api-resources", kubeconfig: alice).status == 0, "discovery is every authenticated user's")

        // A Role and RoleBinding, applied by the admin with kubectl.
        let applied = try await server.kubectl("apply", "-f", "@input", input: """
            apiVersion: rbac.authorization.k8s.io/v1
            kind: Role
            metadata: {name: config-reader, namespace: default}
            rules:
            - {apiGroups: [""], resources: [configmaps], verbs: [get, list, watch]}
            ---
            apiVersion: rbac.authorization.k8s.io/v1
            kind: RoleBinding
            metadata: {name: developers-read-config, namespace: default}
            roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: config-reader}
            subjects: [{apiGroup: rbac.authorization.k8s.io, kind: Group, name: developers}]
            """)
        #expect(applied.status == 0, "\(applied.output)")
        let listed = try await server.kubectl("get", "configmaps", "-o", "name", kubeconfig: alice)
        #expect(listed.status == 0 && listed.output.contains("configmap/app"), "\(listed.output)")
        let deleting = try await server.kubectl("delete", "configmap", "app", kubeconfig: alice)
        #expect(deleting.output.contains(#"configmaps "app" is forbidden: User "alice" cannot delete resource "configmaps" in API group "" in the namespace "default""#),
                "\(deleting.output)")
        let otherNamespace = try await server.kubectl("get", "configmaps", "-n", "kube-system", kubeconfig: alice)
        #expect(otherNamespace.output.contains(#"in the namespace "kube-system""#), "\(otherNamespace.output)")
        let secrets = try await server.kubectl("get", "secret", "db", kubeconfig: alice)
        #expect(secrets.output.contains(#"secrets "db" is forbidden"#), "\(secrets.output)")
        let nodes = try await server.kubectl("get", "nodes", kubeconfig: alice)
        #expect(nodes.output.contains(#"nodes is forbidden: User "alice" cannot list resource "nodes" in API group "" at the cluster scope"#), "\(nodes.output)")

        // kubectl auth can-i, for oneself and (impersonating) for another.
        #expect(try await server.kubectl("auth", "can-i", "list", "configmaps", kubeconfig: alice).output.hasPrefix("yes"))
        let cannot = try await server.kubectl("auth", "can-i", "delete", "configmaps", kubeconfig: alice)
        #expect(cannot.status != 0 && cannot.output.hasPrefix("no"), "\(cannot.output)")
        #expect(try await server.kubectl("auth", "can-i", "list", "configmaps", "--as", "bob", "--as-group", "developers").output.hasPrefix("yes"))
        #expect(try await server.kubectl("auth", "can-i", "list", "configmaps", "--as", "bob").output.hasPrefix("no"))
        let rules = try await server.kubectl("auth", "can-i", "--list", kubeconfig: alice)
        #expect(rules.status == 0 && rules.output.contains("configmaps") && rules.output.contains("selfsubjectaccessreviews"), "\(rules.output)")
        // Impersonation is itself a permission.
        let impersonating = try await server.kubectl("get", "configmaps", "--as", "admin", kubeconfig: alice)
        #expect(impersonating.output.contains(#"users "admin" is forbidden: User "alice" cannot impersonate resource "users" in API group "" at the cluster scope"#),
                "\(impersonating.output)")

        // The bootstrap `view` role, bound cluster-wide: every namespace's configmaps, no secrets.
        #expect(try await server.kubectl("create", "clusterrolebinding", "alice-view", "--clusterrole=view", "--user=alice").status == 0)
        #expect(try await server.kubectl("get", "configmaps", "-n", "kube-system", kubeconfig: alice).status == 0)
        #expect(try await server.kubectl("get", "secrets", "-A", kubeconfig: alice).status != 0)
        // Taking the binding away takes the access away at once.
        #expect(try await server.kubectl("delete", "rolebinding", "developers-read-config").status == 0)
        #expect(try await server.kubectl("delete", "clusterrolebinding", "alice-view").status == 0)
        #expect(try await server.kubectl("get", "configmaps", kubeconfig: alice).status != 0)

        // The official Python client gets the same 403 Status.
        let python = try await runProcessOffPool("/usr/bin/env", ["python3", "-c", """
            import sys
            from kubernetes import client, config
            from kubernetes.client.rest import ApiException
            config.load_kube_config(config_file=sys.argv[1])
            try:
                client.CoreV1Api().list_namespaced_secret("default")
                print("listed")
            except ApiException as error:
                print("status", error.status, error.reason)
                print(error.body)
            """, alice])
        #expect(python.output.contains("status 403 Forbidden"), "\(python.output)")
        #expect(python.output.contains(#"secrets is forbidden: User \"alice\" cannot list resource \"secrets\" in API group \"\" in the namespace \"default\""#),
                "\(python.output)")
        await server.server.stop()
    }

    /// The RBAC file shipped for real clusters is the one the embedded server installs, and its
    /// role gives cloudcore's user what its controllers use and nothing of the rest.
    @Test func cloudcoresPolicyIsTheShippedFileAndGrantsNoMoreThanItsControllersUse() throws {
        let file = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../deploy/rbac/cloudcore.yaml").standardized.path
        #expect(try String(contentsOfFile: file, encoding: .utf8) == KubeEdgePolicy.manifest + "\n")
        let documents = try KubeEdgePolicy.manifest.components(separatedBy: "\n---\n").map { try YAMLDocument.parse($0) }
        let policy = RBACPolicy(clusterRoles: documents.filter { $0["kind"] == .string("ClusterRole") }, roles: [],
                                clusterRoleBindings: documents.filter { $0["kind"] == .string("ClusterRoleBinding") }, roleBindings: [])
        func request(_ verb: String, _ resource: String, _ subresource: String = "", group: String = "") -> RequestAttributes {
            RequestAttributes(verb: verb, apiGroup: group, resource: resource, subresource: subresource, namespace: "default", name: "")
        }
        for user in [UserInfo.authenticated(KubeEdgePolicy.cloudcoreUser), .authenticated("system:serviceaccount:kubeedge:cloudcore")] {
            #expect(policy.allows(user, request("watch", "pods")))
            #expect(policy.allows(user, request("patch", "pods", "status")))
            #expect(policy.allows(user, request("get", "secrets")))
            #expect(policy.allows(user, request("create", "leases", group: "coordination.k8s.io")))
            #expect(policy.allows(user, request("patch", "devices", "status", group: "devices.kubeedge.io")))
            #expect(!policy.allows(user, request("create", "pods")), "cloudcore does not create pods")
            #expect(!policy.allows(user, request("update", "secrets")))
            #expect(!policy.allows(user, request("create", "rolebindings", group: "rbac.authorization.k8s.io")))
            #expect(!policy.allows(user, request("delete", "namespaces")))
        }
        #expect(!policy.allows(.authenticated("system:serviceaccount:default:cloudcore"), request("get", "pods")))
    }

    /// `cloudcore adduser` writes a 0600 kubeconfig with a client certificate from the server's
    /// CA: the user authenticates as its name in its group, may do what bindings grant, and is
    /// refused (401) once the certificate has expired.
    @Test func cloudcoreAdduserWritesAKubeconfigWhoseCertificateExpires() async throws {
        let server = try await EmbeddedServer(secure: true)
        defer { removeTemporaryDirectory(server.directory) }
        let binary = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("cloudcore").path
        let path = server.directory + "/bob.kubeconfig"
        let added = try await runProcessOffPool(binary, ["adduser", "bob", "--group", "testers", "--valid-for", "2", "--data-dir", server.directory,
                                                         "--server", "https://127.0.0.1:\(server.port)", "-o", path])
        #expect(added.status == 0 && added.output.contains(path), "\(added.output)")
        let mode = try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int
        #expect(mode == 0o600)
        let whoami = try await server.kubectl("auth", "whoami", "-o", "jsonpath={.status.userInfo.username}/{.status.userInfo.groups}", kubeconfig: path)
        #expect(whoami.output.hasPrefix("bob/") && whoami.output.contains("testers"), "\(whoami.output)")
        #expect(try await server.kubectl("get", "namespaces", kubeconfig: path).output.contains(#"User "bob" cannot list resource "namespaces""#))
        #expect(try await server.kubectl("create", "clusterrolebinding", "testers-view", "--clusterrole=view", "--group=testers").status == 0)
        #expect(try await server.kubectl("get", "namespaces", kubeconfig: path).status == 0)
        let reserved = try await runProcessOffPool(binary, ["adduser", "root", "--group", "system:masters", "--data-dir", server.directory])
        #expect(reserved.status != 0 && reserved.output.contains("reserved"), "\(reserved.output)")

        // A certificate past its end is refused.
        let expired = server.directory + "/old.kubeconfig"
        try APIServerCredentials.writeUserKubeconfig(authority: server.credentials!.authority, to: expired, server: "https://127.0.0.1:\(server.port)",
                                                     user: "bob", group: "testers", validity: .seconds(3600), now: Date().addingTimeInterval(-7200))
        let refused = try await server.kubectl("get", "namespaces", kubeconfig: expired)
        #expect(refused.status != 0 && !refused.output.contains("namespace/"), "\(refused.output)")
        await server.server.stop()
    }

    /// The review and token endpoints refuse what is not a request for them: a body that is not
    /// JSON (400), a method other than create (405), a review that asks nothing (422), a body
    /// over the limit (413), and callers without the right (403).
    @Test func reviewAndTokenEndpointsRefuseBadRequestsWithKubeAPIServersCodes() async throws {
        let server = try await EmbeddedServer(secure: true, users: [Self.aliceToken: .authenticated("alice")])
        defer { removeTemporaryDirectory(server.directory) }
        let admin = [("Authorization", "Bearer " + server.credentials!.adminToken)]
        let alice = [("Authorization", "Bearer " + Self.aliceToken)]
        let caFile = server.directory + "/ca-for-curl.crt"
        try Data(try server.credentials!.authority.certificate.export()).write(to: URL(fileURLWithPath: caFile))
        // curl over TLS (the test HTTP client speaks plain HTTP); the body goes through a file.
        func request(_ path: String, method: String = "POST", body: String, headers: [(String, String)]) async throws -> (Int, JSONValue) {
            let bodyFile = server.directory + "/request-body"
            try body.write(toFile: bodyFile, atomically: true, encoding: .utf8)
            var arguments = ["-s", "--cacert", caFile, "-X", method, "-w", "\n%{http_code}", "-H", "Content-Type: application/json"]
            for (name, value) in headers { arguments += ["-H", "\(name): \(value)"] }
            if !body.isEmpty { arguments += ["--data-binary", "@" + bodyFile] }
            let result = try await runProcessOffPool("/usr/bin/curl", arguments + ["https://127.0.0.1:\(server.port)" + path])
            let lines = result.output.split(separator: "\n", omittingEmptySubsequences: false)
            let status = Int(lines.last ?? "") ?? 0
            return (status, (try? JSONValue(parsing: lines.dropLast().joined(separator: "\n"))) ?? .null)
        }
        let ssar = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
        let (garbled, garbledStatus) = try await request(ssar, body: "{not json", headers: alice)
        #expect(garbled == 400 && garbledStatus["reason"] == .string("BadRequest"), "\(garbledStatus)")
        let (empty, emptyStatus) = try await request(ssar, body: #"{"apiVersion":"authorization.k8s.io/v1","kind":"SelfSubjectAccessReview","spec":{}}"#, headers: alice)
        #expect(empty == 422 && emptyStatus["message"]?.stringValue?.contains("exactly one of nonResourceAttributes or resourceAttributes must be specified") == true,
                "\(emptyStatus)")
        let (listing, _) = try await request(ssar, method: "GET", body: "", headers: admin)
        #expect(listing == 405)
        let token = "/api/v1/namespaces/default/serviceaccounts/default/token"
        let (badToken, _) = try await request(token, body: "[1,", headers: admin)
        #expect(badToken == 400)
        let (tokenByAlice, tokenStatus) = try await request(token, body: #"{"spec":{}}"#, headers: alice)
        #expect(tokenByAlice == 403 && tokenStatus["message"]?.stringValue?.contains(#"cannot create resource "serviceaccounts/token""#) == true, "\(tokenStatus)")
        let (reviewByAlice, _) = try await request("/apis/authentication.k8s.io/v1/tokenreviews", body: #"{"spec":{"token":"x"}}"#, headers: alice)
        #expect(reviewByAlice == 403, "only who may create tokenreviews learns whether a token is good")
        let (huge, _) = try await request(ssar, body: "{\"pad\":\"" + String(repeating: "x", count: 4 << 20) + "\"}", headers: alice)
        #expect(huge == 413)
        await server.server.stop()
    }
}
