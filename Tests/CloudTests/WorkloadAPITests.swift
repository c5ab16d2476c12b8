import Foundation
import KubeModel
import Testing
import TestSupport

/// The workload kinds on the embedded server (apps/v1 Deployment, ReplicaSet, DaemonSet,
/// ControllerRevision; batch/v1 Job, CronJob), through kubectl and the official Python client:
/// kube-apiserver's defaults, a Job's generated selector, `kubectl scale`, the usual columns,
/// and kube's messages for what it refuses.
@Suite struct WorkloadAPITests {
    @Test func kubectlCreatesWorkloadsWithKubeAPIServersDefaultsAndScalesThem() async throws {
        let server = try await EmbeddedServer(secure: true)
        defer { removeTemporaryDirectory(server.directory) }
        let created = try await server.kubectl("create", "deployment", "web", "--image=busybox", "--replicas=3", "--", "sleep", "3600")
        #expect(created.status == 0, "\(created.output)")
        let deployment = try JSONValue(parsing: try await server.kubectl("get", "deployment", "web", "-o", "json").output)
        #expect(deployment[path: ["spec", "strategy"]] == .object(JSONObject([
            ("type", .string("RollingUpdate")),
            ("rollingUpdate", .object(JSONObject([("maxUnavailable", .string("25%")), ("maxSurge", .string("25%"))]))),
        ])), "\(deployment["spec"] ?? .null)")
        #expect(deployment[path: ["spec", "revisionHistoryLimit"]] == .integer(10) && deployment[path: ["spec", "progressDeadlineSeconds"]] == .integer(600))
        #expect(deployment[path: ["spec", "template", "spec", "restartPolicy"]] == .string("Always"))
        #expect(deployment[path: ["spec", "template", "spec", "containers"]]?.arrayValue?.first?["imagePullPolicy"] == .string("Always"))
        let table = try await server.kubectl("get", "deployment", "web")
        #expect(table.output.contains("READY") && table.output.contains("UP-TO-DATE") && table.output.contains("0/3"), "\(table.output)")

        // The scale subresource, as kubectl scale uses it.
        let scaled = try await server.kubectl("scale", "deployment", "web", "--replicas=5")
        #expect(scaled.status == 0, "\(scaled.output)")
        #expect(try await server.kubectl("get", "deployment", "web", "-o", "jsonpath={.spec.replicas}").output == "5")
        let scale = try await server.kubectl("get", "--raw", "/apis/apps/v1/namespaces/default/deployments/web/scale")
        #expect(try JSONValue(parsing: scale.output)[path: ["status", "selector"]] == .string("app=web"), "\(scale.output)")

        // A Job's selector is generated from its uid, and its pods' labels name it.
        #expect(try await server.kubectl("create", "job", "once", "--image=busybox", "--", "true").status == 0)
        let job = try JSONValue(parsing: try await server.kubectl("get", "job", "once", "-o", "json").output)
        let uid = try #require(job[path: ["metadata", "uid"]]?.stringValue)
        #expect(job[path: ["spec", "selector", "matchLabels", "batch.kubernetes.io/controller-uid"]] == .string(uid), "\(job["spec"] ?? .null)")
        #expect(job[path: ["spec", "template", "metadata", "labels", "job-name"]] == .string("once"))
        #expect(job[path: ["spec", "backoffLimit"]] == .integer(6) && job[path: ["spec", "completions"]] == .integer(1) && job[path: ["spec", "parallelism"]] == .integer(1))
        #expect(try await server.kubectl("create", "cronjob", "nightly", "--image=busybox", "--schedule=0 3 * * *", "--", "true").status == 0)
        #expect(try await server.kubectl("get", "cronjob", "nightly").output.contains("0 3 * * *"))

        // The official Python client reads them as its models have them.
        let python = try await runProcessOffPool("/usr/bin/env", ["python3", "-c", """
            import sys
            from kubernetes import client, config
            config.load_kube_config(config_file=sys.argv[1])
            apps, batch = client.AppsV1Api(), client.BatchV1Api()
            d = apps.read_namespaced_deployment("web", "default")
            print("deployment", d.spec.replicas, d.spec.strategy.type, d.spec.selector.match_labels)
            print("scale", apps.read_namespaced_deployment_scale("web", "default").spec.replicas)
            print("job", batch.read_namespaced_job("once", "default").spec.backoff_limit)
            print("cronjob", batch.read_namespaced_cron_job("nightly", "default").spec.concurrency_policy)
            body = client.V1DaemonSet(metadata=client.V1ObjectMeta(name="agent"), spec=client.V1DaemonSetSpec(
                selector=client.V1LabelSelector(match_labels={"app": "agent"}),
                template=client.V1PodTemplateSpec(metadata=client.V1ObjectMeta(labels={"app": "agent"}),
                    spec=client.V1PodSpec(containers=[client.V1Container(name="agent", image="busybox")]))))
            apps.create_namespaced_daemon_set("default", body)
            ds = apps.read_namespaced_daemon_set("agent", "default")
            print("daemonset", ds.spec.update_strategy.type, ds.spec.update_strategy.rolling_update.max_unavailable,
                  ds.spec.update_strategy.rolling_update.max_surge, ds.spec.revision_history_limit)
            """, server.directory + "/kubeconfig"])
        #expect(python.output.contains("deployment 5 RollingUpdate {'app': 'web'}") && python.output.contains("scale 5")
                && python.output.contains("job 6") && python.output.contains("cronjob Allow") && python.output.contains("daemonset RollingUpdate 1 0 10"),
                "\(python.output)")
        await server.server.stop()
    }

    @Test func workloadsThatCannotBeRefusedWithKubeAPIServersMessages() async throws {
        let server = try await EmbeddedServer()
        defer { removeTemporaryDirectory(server.directory) }
        func apply(_ yaml: String) async throws -> String { try await server.kubectl("apply", "-f", "@input", input: yaml).output }
        let mismatch = try await apply("""
            apiVersion: apps/v1
            kind: Deployment
            metadata: {name: odd}
            spec:
              replicas: -1
              selector: {matchLabels: {app: odd}}
              template:
                metadata: {labels: {app: other}}
                spec: {containers: [{name: c, image: busybox}]}
            """)
        // kubectl lists the causes of kube's 422.
        #expect(mismatch.contains(#"The Deployment "odd" is invalid: "#) && mismatch.contains("* spec.replicas: Invalid value: -1: must be greater than or equal to 0")
                && mismatch.contains(#"* spec.template.metadata.labels: Invalid value: map[string]string{"app":"other"}: `selector` does not match template `labels`"#),
                "\(mismatch)")
        let empty = try await apply("""
            apiVersion: apps/v1
            kind: ReplicaSet
            metadata: {name: empty}
            spec:
              selector: {}
              template: {spec: {containers: [{name: c, image: busybox}]}}
            """)
        #expect(empty.contains(#"The ReplicaSet "empty" is invalid: spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: empty selector is invalid"#),
                "\(empty)")
        let schedule = try await server.kubectl("create", "cronjob", "bad", "--image=busybox", "--schedule=every day", "--", "true")
        #expect(schedule.output.contains(#"CronJob.batch "bad" is invalid: spec.schedule: Invalid value: "every day": expected exactly 5 fields, found 2: [every day]"#),
                "\(schedule.output)")
        let range = try await server.kubectl("create", "cronjob", "late", "--image=busybox", "--schedule=0 25 * * *", "--", "true")
        #expect(range.output.contains("end of range (25) above maximum (23): 25"), "\(range.output)")
        let always = try await apply("""
            apiVersion: batch/v1
            kind: Job
            metadata: {name: forever}
            spec: {template: {spec: {containers: [{name: c, image: busybox}]}}}
            """)
        #expect(always.contains(#"The Job "forever" is invalid: spec.template.spec.restartPolicy: Unsupported value: "Always": supported values: "OnFailure", "Never""#),
                "\(always)")
        let near = try await apply("""
            apiVersion: v1
            kind: Pod
            metadata: {name: near}
            spec:
              affinity:
                nodeAffinity:
                  requiredDuringSchedulingIgnoredDuringExecution:
                    nodeSelectorTerms: [{matchExpressions: [{key: zone, operator: Near, values: [a]}]}]
              containers: [{name: c, image: busybox}]
            """)
        #expect(near.contains(#"The Pod "near" is invalid: spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].operator: Unsupported value: "Near": supported values: "DoesNotExist", "Exists", "Gt", "In", "Lt", "NotIn""#),
                "\(near)")
        // Nothing was stored; a selector may not change once set.
        #expect(try await server.kubectl("get", "deployments,replicasets,cronjobs,jobs,pods", "-o", "name").output.isEmpty)
        #expect(try await server.kubectl("create", "deployment", "fixed", "--image=busybox").status == 0)
        let moved = try await server.kubectl("patch", "deployment", "fixed", "--type=merge", "-p",
                                             #"{"spec":{"selector":{"matchLabels":{"app":"moved"}},"template":{"metadata":{"labels":{"app":"moved"}}}}}"#)
        #expect(moved.output.contains("spec.selector: Invalid value:") && moved.output.contains("field is immutable"), "\(moved.output)")
        await server.server.stop()
    }

    @Test func cronSchedulesParseAndFireAsCronDoes() throws {
        let start = try Date("2026-12-07T10:22:30Z", strategy: .iso8601)
        func next(_ spec: String, after date: Date) throws -> String? {
            try CronSchedule(parsing: spec).next(after: date)?.formatted(.iso8601)
        }
        #expect(try next("*/15 * * * *", after: start) == "2026-12-07T10:30:00Z")
        #expect(try next("0 3 * * *", after: start) == "2026-12-08T03:00:00Z")
        #expect(try next("@hourly", after: start) == "2026-12-07T11:00:00Z")
        #expect(try next("0 0 1 jan *", after: start) == "2027-01-01T00:00:00Z")
        #expect(try next("30 9 * * mon-fri", after: start) == "2026-12-08T09:30:00Z")  // 7 Dec 2026 is a Monday, 09:30 has passed
        #expect(try next("0 12 13 * fri", after: start) == "2026-12-11T12:00:00Z")    // day 13 or any Friday
        #expect(throws: CronScheduleError(message: "step of range should be a positive number: */0")) { try CronSchedule(parsing: "*/0 * * * *") }
        #expect(throws: CronScheduleError(message: "unrecognized descriptor: @often")) { try CronSchedule(parsing: "@often") }
        #expect(throws: CronScheduleError(message: "beginning of range (5) beyond end of range (2): 5-2")) { try CronSchedule(parsing: "5-2 * * * *") }
    }
}
