@testable import Cloud
import Foundation
import KubeModel
import Testing
import TestSupport

/// Pod Security admission through kubectl: user namespaces are `baseline` unless labelled,
/// the cluster's own are `privileged`, `restricted` asks for everything the standard does, and
/// `warn` warns; refusals carry kube-apiserver's messages and store nothing.
@Suite struct PodSecurityTests {
    static func pod(_ name: String, namespace: String, spec: String) -> String {
        """
        apiVersion: v1
        kind: Pod
        metadata: {name: \(name), namespace: \(namespace)}
        spec:
        \(spec.split(separator: "\n").map { "  " + $0 }.joined(separator: "\n"))
        """
    }

    @Test func userNamespacesAreBaselineByDefaultAndLabelsChooseTheLevel() async throws {
        let server = try await EmbeddedServer()
        defer { removeTemporaryDirectory(server.directory) }
        let privileged = try await server.kubectl("run", "priv", "--image=busybox", "--privileged")
        #expect(privileged.status != 0)
        #expect(privileged.output.contains(#"pods "priv" is forbidden: violates PodSecurity "baseline:latest": privileged (container "priv" must not set securityContext.privileged=true)"#),
                "\(privileged.output)")
        let host = try await server.kubectl("apply", "-f", "@input", input: Self.pod("host", namespace: "default", spec: """
            hostNetwork: true
            containers: [{name: c, image: busybox, ports: [{containerPort: 80, hostPort: 8080}]}]
            volumes: [{name: root, hostPath: {path: /}}]
            """))
        #expect(host.output.contains(#"violates PodSecurity "baseline:latest": host namespaces (hostNetwork=true), hostPath volumes (volume "root"), hostPort (container "c" uses hostPort 8080)"#),
                "\(host.output)")
        let capabilities = try await server.kubectl("apply", "-f", "@input", input: Self.pod("caps", namespace: "default", spec: """
            containers: [{name: c, image: busybox, securityContext: {capabilities: {add: [NET_ADMIN, CHOWN, SYS_ADMIN]}}}]
            """))
        #expect(capabilities.output.contains(#"non-default capabilities (container "c" must not include "NET_ADMIN", "SYS_ADMIN" in securityContext.capabilities.add)"#),
                "\(capabilities.output)")
        // Server-side apply is admitted the same way.
        let applied = try await server.kubectl("apply", "--server-side", "-f", "@input", input: Self.pod("ssa", namespace: "default", spec: """
            containers: [{name: c, image: busybox, securityContext: {privileged: true}}]
            """))
        #expect(applied.output.contains(#"violates PodSecurity "baseline:latest": privileged (container "c" must not set securityContext.privileged=true)"#),
                "\(applied.output)")
        #expect(try await server.kubectl("get", "pods", "-o", "name").output.isEmpty, "nothing stored")
        // An ordinary pod is baseline.
        #expect(try await server.kubectl("run", "plain", "--image=busybox").status == 0)

        // The cluster's own namespaces are privileged; a label makes a user namespace so too.
        #expect(try await server.kubectl("run", "system", "--image=busybox", "--privileged", "-n", "kube-system").status == 0)
        #expect(try await server.kubectl("create", "namespace", "ops").status == 0)
        #expect(try await server.kubectl("run", "priv", "--image=busybox", "--privileged", "-n", "ops").status != 0)
        #expect(try await server.kubectl("label", "namespace", "ops", "pod-security.kubernetes.io/enforce=privileged").status == 0)
        #expect(try await server.kubectl("run", "priv", "--image=busybox", "--privileged", "-n", "ops").status == 0)

        // Restricted asks for the standard's hardening; a pod that has it is admitted.
        #expect(try await server.kubectl("create", "namespace", "locked").status == 0)
        #expect(try await server.kubectl("label", "namespace", "locked", "pod-security.kubernetes.io/enforce=restricted").status == 0)
        let loose = try await server.kubectl("run", "loose", "--image=busybox", "-n", "locked")
        #expect(loose.output.contains(#"pods "loose" is forbidden: violates PodSecurity "restricted:latest": allowPrivilegeEscalation != false (container "loose" must set securityContext.allowPrivilegeEscalation=false), unrestricted capabilities (container "loose" must set securityContext.capabilities.drop=["ALL"]), runAsNonRoot != true (pod or container "loose" must set securityContext.runAsNonRoot=true), seccompProfile (pod or container "loose" must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")"#),
                "\(loose.output)")
        let hardened = try await server.kubectl("apply", "-f", "@input", input: Self.pod("hardened", namespace: "locked", spec: """
            securityContext: {runAsNonRoot: true, runAsUser: 1000, seccompProfile: {type: RuntimeDefault}}
            containers: [{name: c, image: busybox, securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}}]
            volumes: [{name: cfg, configMap: {name: x}}]
            """))
        #expect(hardened.status == 0, "\(hardened.output)")

        // warn: admitted, with kube-apiserver's warning.
        #expect(try await server.kubectl("label", "namespace", "ops", "--overwrite", "pod-security.kubernetes.io/enforce=baseline",
                                         "pod-security.kubernetes.io/warn=restricted").status == 0)
        let warned = try await server.kubectl("run", "warned", "--image=busybox", "-n", "ops")
        #expect(warned.status == 0, "\(warned.output)")
        #expect(warned.output.contains(#"Warning: would violate PodSecurity "restricted:latest": allowPrivilegeEscalation != false"#), "\(warned.output)")
        await server.server.stop()
    }

    @Test func theAuditLevelRecordsWhatItWouldRefuseAndAdmitsThePod() async throws {
        let logs = CapturedLogs()
        let server = try await EmbeddedServer(logs: logs)
        defer { removeTemporaryDirectory(server.directory) }
        #expect(try await server.kubectl("create", "namespace", "audited").status == 0)
        #expect(try await server.kubectl("label", "namespace", "audited", "pod-security.kubernetes.io/enforce=baseline",
                                         "pod-security.kubernetes.io/audit=restricted").status == 0)
        let created = try await server.kubectl("run", "plain", "-n", "audited", "--image=busybox")
        #expect(created.status == 0 && !created.output.contains("Warning"), "audit neither refuses nor warns: \(created.output)")
        let line = logs.all.first { $0.message == "pod security audit" }
        #expect(line?.metadata["pod"] == "audited/plain", "\(logs.all.map(\.message))")
        #expect(line?.metadata["pod-security.kubernetes.io/audit-violations"]?.hasPrefix(#"would violate PodSecurity "restricted:latest": allowPrivilegeEscalation != false"#) == true,
                "\(line?.metadata ?? [:])")
        // A pod that meets the audit level is not recorded.
        let before = logs.all.filter { $0.message == "pod security audit" }.count
        #expect(try await server.kubectl("apply", "-f", "@input", input: Self.pod("tight", namespace: "audited", spec: """
            securityContext: {runAsNonRoot: true, seccompProfile: {type: RuntimeDefault}}
            containers: [{name: c, image: busybox, securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}}]
            """)).status == 0)
        #expect(logs.all.filter { $0.message == "pod security audit" }.count == before)
        await server.server.stop()
    }

    @Test func checksFollowThePodSecurityStandards() throws {
        func violations(_ spec: String, _ level: PodSecurity.Level) throws -> [String] {
            PodSecurity.violations(of: try JSONValue(parsing: #"{"metadata":{"name":"p"},"spec":\#(spec)}"#), level: level)
        }
        #expect(try violations(#"{"containers":[{"name":"c","securityContext":{"procMount":"Unmasked"}}]}"#, .baseline)
                == [#"procMount (container "c" must not set securityContext.procMount to "Unmasked")"#])
        #expect(try violations(#"{"securityContext":{"sysctls":[{"name":"net.ipv4.tcp_syncookies","value":"1"},{"name":"kernel.msgmax","value":"1"}]},"containers":[]}"#, .baseline)
                == ["forbidden sysctls (kernel.msgmax)"])
        #expect(try violations(#"{"securityContext":{"seccompProfile":{"type":"Unconfined"}},"containers":[{"name":"c"}]}"#, .baseline)
                == [#"seccompProfile (pod must not set securityContext.seccompProfile.type to "Unconfined")"#])
        #expect(try violations(#"{"securityContext":{"runAsNonRoot":true,"seccompProfile":{"type":"RuntimeDefault"}},"containers":[{"name":"c","securityContext":{"runAsUser":0,"allowPrivilegeEscalation":false,"capabilities":{"drop":["ALL"],"add":["NET_BIND_SERVICE"]}}}],"volumes":[{"name":"data","nfs":{"server":"s","path":"/"}}]}"#, .restricted)
                == [#"restricted volume types (volume "data" uses restricted volume type "nfs")"#, #"runAsUser=0 (container "c" must not set runAsUser=0)"#])
        #expect(try violations(#"{"hostPID":true,"containers":[{"name":"c","securityContext":{"privileged":true}}]}"#, .privileged).isEmpty)
    }
}
