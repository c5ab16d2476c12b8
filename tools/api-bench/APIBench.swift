// api-bench: the embedded Kubernetes API server's figures, each beside a baseline measured in
// the same run.
//   writes: pods created per second through KubeClient (HTTP/1.1 keep-alive, TLS + token with
//           --tls), beside raw SQLite inserting the same JSON one transaction each.
//   list:   latency of listing every pod (and of a spec.nodeName field selector), beside raw
//           SQLite reading the same rows.
//   watch:  events per second delivered to concurrent watchers (HTTP watch streams, parsed by
//           the client), beside the same changes fanned out by the store to in-process watchers.
import ArgumentParser
import BenchSupport
import Cloud
import Foundation
import KubeModel
import Logging
import Synchronization
import Storage
import Transport

@main
struct APIBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "api-bench",
        abstract: "Embedded API server throughput and latency against same-run baselines (run it with -c release).")

    @Option(help: "Pods created (and then listed).")
    var pods = 10_000
    @Option(help: "Concurrent writers.")
    var writers = 8
    @Option(help: "Concurrent watchers.")
    var watchers = 100
    @Option(help: "Pod updates the watchers receive.")
    var updates = 2_000
    @Option(help: "Times every list is measured.")
    var lists = 10
    @Flag(help: "HTTPS with a bearer token, as cloudcore serves it (default plain HTTP on loopback).")
    var tls = false

    func run() async throws {
        bootstrapBenchLogging(level: .error)
        let directory = NSTemporaryDirectory() + "api-bench-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let nodes = 100
        let podJSON = { @Sendable (index: Int) in
            PodTemplate.pod(name: "pod-\(index)", node: "edge-\(index % nodes)")
        }

        // Baselines first, on a file of their own with the store's settings.
        let raw = try RawSQLite(path: directory + "/raw.db")
        try await raw.createTable()
        let rawWrites = try await raw.insert((0..<pods).map { podJSON($0).serializedBytes })
        var rawList: [Double] = []
        for _ in 0..<lists { rawList.append(try await raw.readAll()) }

        let store = try ObjectStore(configuration: .init(path: directory + "/objects.db"))
        var security: APIServer.Security?
        var kubeconfig = Kubeconfig(server: "")
        if tls {
            let credentials = try APIServerCredentials.loadOrCreate(directory: directory + "/pki")
            security = APIServer.Security(credentials: credentials)
            // A user with no group: what RBAC lets it do comes from a binding (see authorizationFigures).
            security?.tokens["bench-user-token"] = .authenticated("bench-user")
            kubeconfig.certificateAuthorityPEM = Array(try credentials.authority.certificate.export(.pem))
            kubeconfig.token = credentials.adminToken
        }
        let server = APIServer(configuration: .init(port: 0, security: security), store: store)
        let port = try await server.bind()
        let serving = Task { try await server.run() }
        kubeconfig.server = "\(tls ? "https" : "http")://127.0.0.1:\(port)"
        let client = try KubeClient(configuration: kubeconfig, maxIdleConnections: max(writers, 16))
        let podsResource = APIResource.standard.first { $0.plural == "pods" }!
        _ = try await client.create(APIResource.standard.first { $0.plural == "namespaces" }!, try JSONValue(parsing: #"{"metadata":{"name":"bench"}}"#))

        // Writes, while a probe measures how long a trivial task waits for the cooperative pool.
        let idleProbe = PoolStallProbe()
        try await Task.sleep(for: .milliseconds(500))
        let idleStall = await idleProbe.stop()
        let cpu0 = cpuSeconds()
        let probe = PoolStallProbe()
        let writeStart = ContinuousClock.now
        let writeLatencies = try await concurrently(count: pods, workers: writers) { index in
            _ = try await client.create(podsResource, namespace: "bench", podJSON(index))
        }
        let writeSeconds = seconds(ContinuousClock.now - writeStart)
        let writeCPU = cpuSeconds() - cpu0
        let stall = await probe.stop()

        // The same creates straight into the store (no HTTP, no JSON parsing), 8 writers.
        let storeKeys = (0..<pods).map { ObjectKey(resource: "pods", namespace: "bench-store", name: "pod-\($0)") }
        let storePods = (0..<pods).map { index -> JSONValue in
            var pod = podJSON(index)
            pod.set(.string("bench-store"), at: ["metadata", "namespace"])
            return pod
        }
        let storeStart = ContinuousClock.now
        _ = try await concurrently(count: pods, workers: writers) { index in
            _ = try await store.create(storeKeys[index], storePods[index])
        }
        let storeWrites = Double(pods) / seconds(ContinuousClock.now - storeStart)

        // The same creates in Kubernetes protobuf (as client-go sends them), into their own namespace.
        let protobufClient = try KubeClient(configuration: kubeconfig, maxIdleConnections: max(writers, 16), encoding: .protobuf)
        _ = try await client.create(APIResource.standard.first { $0.plural == "namespaces" }!, try JSONValue(parsing: #"{"metadata":{"name":"bench-pb"}}"#))
        let protobufCPU0 = cpuSeconds()
        let protobufStart = ContinuousClock.now
        let protobufLatencies = try await concurrently(count: pods, workers: writers) { index in
            var pod = podJSON(index)
            pod.set(.string("bench-pb"), at: ["metadata", "namespace"])
            _ = try await protobufClient.create(podsResource, namespace: "bench-pb", pod)
        }
        let protobufWrites = Double(pods) / seconds(ContinuousClock.now - protobufStart)
        let protobufCPU = cpuSeconds() - protobufCPU0

        // Lists.
        var listAll: [Double] = []
        var listNode: [Double] = []
        for _ in 0..<lists {
            let start = ContinuousClock.now
            let all = try await client.list(podsResource, namespace: "bench")
            listAll.append(seconds(ContinuousClock.now - start))
            guard all.items.count == pods else { throw BenchFailure("listed \(all.items.count) pods, expected \(pods)") }
            let nodeStart = ContinuousClock.now
            let one = try await client.list(podsResource, namespace: "bench", fieldSelector: "spec.nodeName=edge-7")
            listNode.append(seconds(ContinuousClock.now - nodeStart))
            guard one.items.count == (0..<pods).filter({ $0 % nodes == 7 }).count else { throw BenchFailure("the field selector listed \(one.items.count) pods") }
        }
        var listProtobuf: [Double] = []
        for _ in 0..<lists {
            let start = ContinuousClock.now
            let all = try await protobufClient.list(podsResource, namespace: "bench")
            listProtobuf.append(seconds(ContinuousClock.now - start))
            guard all.items.count == pods else { throw BenchFailure("listed \(all.items.count) pods in protobuf, expected \(pods)") }
        }

        // Watch: every watcher sees every update; the writer stamps each with its send time.
        let watchFigures = try await watchFigures(client: client, resource: podsResource, store: store)
        let protobufWatch = try await self.watchFigures(client: protobufClient, resource: podsResource, store: store)
        let baselineFanOut = try await storeFanOut(store: store)
        // With TLS: what RBAC and admission cost a user a ClusterRoleBinding gives `edit`, beside
        // servers on the same store with authorization off, and with admission off too.
        let authorization = try await tls ? authorizationFigures(store: store, admin: client, security: security!, kubeconfig: kubeconfig, port: port) : nil
        let rss = residentBytes()
        server.close()
        try await serving.value

        let table: [(String, String, String, String)] = [
            ("figure", "embedded API server", "baseline (same run)", "ratio"),
            ("pod creates/s (\(writers) writers\(tls ? ", TLS" : ""))", format(Double(pods) / writeSeconds),
             "raw SQLite inserts: \(format(rawWrites))", ratio(Double(pods) / writeSeconds, rawWrites)),
            ("store creates/s in process (\(writers) writers)", format(storeWrites), "raw SQLite inserts: \(format(rawWrites))", ratio(storeWrites, rawWrites)),
            ("  create latency p50 / p99", "\(ms(percentile(writeLatencies, 0.5))) / \(ms(percentile(writeLatencies, 0.99)))", "", ""),
            ("  server+client CPU per create", String(format: "%.0f µs", writeCPU / Double(pods) * 1e6), "", ""),
            ("  longest wait of a trivial task (p99)", "\(ms(stall.longest)) (\(ms(stall.p99)))",
             "idle process: \(ms(idleStall.longest)) (\(ms(idleStall.p99)))", ""),
            ("list \(pods) pods, p50 (min)", "\(ms(percentile(listAll, 0.5))) (\(ms(listAll.min() ?? 0)))",
             "raw SQLite read: \(ms(percentile(rawList, 0.5)))", ratio(percentile(listAll, 0.5), percentile(rawList, 0.5))),
            ("list spec.nodeName=edge-7, p50", ms(percentile(listNode, 0.5)), "", ""),
            ("watch events/s delivered (\(watchers) watchers)", format(watchFigures.perSecond),
             "store fan-out in process: \(format(baselineFanOut))", ratio(watchFigures.perSecond, baselineFanOut)),
            ("  write→watcher latency p50 / p99", "\(ms(percentile(watchFigures.latencies, 0.5))) / \(ms(percentile(watchFigures.latencies, 0.99)))", "", ""),
            ("pod creates/s in protobuf (\(writers) writers)", format(protobufWrites), "in JSON: \(format(Double(pods) / writeSeconds))",
             ratio(protobufWrites, Double(pods) / writeSeconds)),
            ("  create latency p50 / p99", "\(ms(percentile(protobufLatencies, 0.5))) / \(ms(percentile(protobufLatencies, 0.99)))", "", ""),
            ("  server+client CPU per create", String(format: "%.0f µs", protobufCPU / Double(pods) * 1e6),
             String(format: "in JSON: %.0f µs", writeCPU / Double(pods) * 1e6), ""),
            ("list \(pods) pods in protobuf, p50 (min)", "\(ms(percentile(listProtobuf, 0.5))) (\(ms(listProtobuf.min() ?? 0)))",
             "in JSON: \(ms(percentile(listAll, 0.5)))", ratio(percentile(listProtobuf, 0.5), percentile(listAll, 0.5))),
            ("watch events/s in protobuf (\(watchers) watchers)", format(protobufWatch.perSecond), "in JSON: \(format(watchFigures.perSecond))",
             ratio(protobufWatch.perSecond, watchFigures.perSecond)),
            ("process RSS at the end", String(format: "%.1f MB", Double(rss) / 1e6), "", ""),
        ] + (authorization.map { figures in [
            ("pod creates/s, RBAC-bound user (authz on)", format(figures.creates.on), "authz off: \(format(figures.creates.authzOff))",
             ratio(figures.creates.on, figures.creates.authzOff)),
            ("pod creates/s, admission on (authz off)", format(figures.creates.authzOff), "admission off too: \(format(figures.creates.bothOff))",
             ratio(figures.creates.authzOff, figures.creates.bothOff)),
            ("list \(3 * max(pods / 6, 100)) pods, RBAC-bound user, p50", ms(figures.lists.on), "authz off: \(ms(figures.lists.authzOff))",
             ratio(figures.lists.on, figures.lists.authzOff)),
        ] } ?? [])
        let widths = (0..<3).map { column in table.map { [$0.0, $0.1, $0.2][column].count }.max() ?? 0 }
        for row in table {
            print(row.0.padding(toLength: widths[0], withPad: " ", startingAt: 0) + "  " + row.1.padding(toLength: widths[1], withPad: " ", startingAt: 0)
                  + "  " + row.2.padding(toLength: widths[2], withPad: " ", startingAt: 0) + "  " + row.3)
        }
    }

    /// Creates and lists as a user whose ClusterRoleBinding grants `edit`, through the server at
    /// `port` (authorization and admission on), a second server on the same store with
    /// authorization off, and a third with admission off too; creates/s and list p50 seconds of each.
    func authorizationFigures(store: ObjectStore, admin: KubeClient, security: APIServer.Security, kubeconfig: Kubeconfig, port: Int) async throws
        -> (creates: (on: Double, authzOff: Double, bothOff: Double), lists: (on: Double, authzOff: Double, bothOff: Double)) {
        _ = try await admin.create(APIResource.standard.first { $0.plural == "clusterrolebindings" }!, try JSONValue(parsing: """
            {"metadata":{"name":"bench-user-edit"},"roleRef":{"apiGroup":"rbac.authorization.k8s.io","kind":"ClusterRole","name":"edit"},
             "subjects":[{"apiGroup":"rbac.authorization.k8s.io","kind":"User","name":"bench-user"}]}
            """))
        func server(admission: Bool) -> APIServer {
            var configuration = APIServer.Configuration(port: 0, security: security)
            configuration.authorization = false
            configuration.admission = admission
            return APIServer(configuration: configuration, store: store)
        }
        let (authzOff, bothOff) = (server(admission: true), server(admission: false))
        let ports = (try await authzOff.bind(), try await bothOff.bind())
        let serving = (Task { try await authzOff.run() }, Task { try await bothOff.run() })
        defer {
            authzOff.close()
            bothOff.close()
        }
        let podsResource = APIResource.standard.first { $0.plural == "pods" }!
        let count = max(pods / 6, 100)
        _ = try await admin.create(APIResource.standard.first { $0.plural == "namespaces" }!, try JSONValue(parsing: #"{"metadata":{"name":"bench-authz"}}"#))
        func client(port: Int) throws -> KubeClient {
            var userConfig = kubeconfig
            userConfig.server = "https://127.0.0.1:\(port)"
            userConfig.token = "bench-user-token"
            return try KubeClient(configuration: userConfig, maxIdleConnections: max(writers, 16))
        }
        let clients = [try client(port: port), try client(port: ports.0), try client(port: ports.1)]
        // Rounds go round the three servers, so that none gains from its place.
        var spent = [0.0, 0.0, 0.0]
        for round in 0..<6 {
            let which = round % 3
            let start = ContinuousClock.now
            _ = try await concurrently(count: count / 2, workers: writers) { index in
                var pod = PodTemplate.pod(name: "r\(round)-\(index)", node: "edge-\(index % 100)")
                pod.set(.string("bench-authz"), at: ["metadata", "namespace"])
                _ = try await clients[which].create(podsResource, namespace: "bench-authz", pod)
            }
            spent[which] += seconds(ContinuousClock.now - start)
        }
        var listed: [[Double]] = [[], [], []]
        for _ in 0..<lists {
            for which in 0..<3 {
                let start = ContinuousClock.now
                _ = try await clients[which].list(podsResource, namespace: "bench-authz")
                listed[which].append(seconds(ContinuousClock.now - start))
            }
        }
        authzOff.close()
        bothOff.close()
        try await serving.0.value
        try await serving.1.value
        let creates = spent.map { Double(count) / $0 }
        let lists = listed.map { percentile($0, 0.5) }
        return ((creates[0], creates[1], creates[2]), (lists[0], lists[1], lists[2]))
    }

    /// `updates` patches to one pod while `watchers` watch the namespace; events/s is every
    /// delivered event over the time from the first patch to the last delivery.
    func watchFigures(client: KubeClient, resource: APIResource, store: ObjectStore) async throws -> (perSecond: Double, latencies: [Double]) {
        let from = String(store.revision)
        let ready = SharedCount()
        let updates = updates
        let clock = ContinuousClock()
        let origin = clock.now
        let result = try await withThrowingTaskGroup(of: (Int, [Double], ContinuousClock.Instant).self) { group in
            for _ in 0..<watchers {
                group.addTask {
                    var latencies: [Double] = []
                    latencies.reserveCapacity(updates)
                    var seen = 0
                    var last = clock.now
                    ready.value.add(1, ordering: .relaxed)
                    do {
                        try await client.watch(resource, namespace: "bench", resourceVersion: from, timeoutSeconds: 600) { event in
                            guard event.type == "MODIFIED", let stamp = event.object[path: ["metadata", "annotations", "bench/sent"]]?.stringValue,
                                  let sent = Double(stamp) else { return }
                            last = clock.now
                            latencies.append(seconds(last - origin) - sent)
                            seen += 1
                            if seen == updates { throw WatchedEnough() }
                        }
                    } catch is WatchedEnough {}
                    return (seen, latencies, last)
                }
            }
            // Watches are registered once each has sent its request; wait for the streams to open.
            while ready.value.load(ordering: .relaxed) < watchers { try await Task.sleep(for: .milliseconds(10)) }
            try await Task.sleep(for: .milliseconds(500))
            let start = clock.now
            for index in 0..<updates {
                let annotations = JSONObject([("bench/sent", .string(String(seconds(clock.now - origin)))), ("bench/index", .string(String(index)))])
                let change = JSONValue.object(JSONObject([("metadata", .object(JSONObject([("annotations", .object(annotations))])))]))
                _ = try await client.patch(resource, namespace: "bench", name: "pod-0", change)
            }
            var delivered = 0
            var latencies: [Double] = []
            var end = start
            for try await (seen, watcherLatencies, last) in group {
                delivered += seen
                latencies += watcherLatencies
                end = max(end, last)
            }
            guard delivered == watchers * updates else { throw BenchFailure("watchers saw \(delivered) events, expected \(watchers * updates)") }
            return (Double(delivered) / seconds(end - start), latencies)
        }
        return result
    }

    /// The same number of changes fanned out by the store to `watchers` in-process streams.
    func storeFanOut(store: ObjectStore) async throws -> Double {
        let key = ObjectKey(resource: "configmaps", namespace: "bench", name: "fan-out")
        let from = store.revision
        let updates = updates
        var streams: [AsyncStream<ObjectEvent>] = []
        for _ in 0..<watchers { streams.append(try await store.watch(resource: "configmaps", namespace: "bench", after: from)) }
        let start = ContinuousClock.now
        let consumers = Task {
            try await withThrowingTaskGroup(of: Int.self) { group in
                for stream in streams {
                    group.addTask {
                        var seen = 0
                        for await event in stream where event.kind != .bookmark {
                            _ = event.encodedObject.count  // a watch sends these bytes as they are
                            seen += 1
                            if seen == updates + 1 { break }
                        }
                        return seen
                    }
                }
                return try await group.reduce(0, +)
            }
        }
        var object = try JSONValue(parsing: #"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"fan-out","namespace":"bench"},"data":{"k":"0"}}"#)
        object = try await store.create(key, object)
        for index in 0..<updates {
            object.set(.string(String(index)), at: ["data", "k"])
            object = try await store.update(key, object)
        }
        let delivered = try await consumers.value
        guard delivered == watchers * (updates + 1) else { throw BenchFailure("store watchers saw \(delivered) events") }
        return Double(delivered) / seconds(ContinuousClock.now - start)
    }
}

/// Runs `count` operations on `workers` tasks; returns each operation's latency in seconds.
func concurrently(count: Int, workers: Int, _ operation: @escaping @Sendable (Int) async throws -> Void) async throws -> [Double] {
    let next = SharedCount()
    return try await withThrowingTaskGroup(of: [Double].self) { group in
        for _ in 0..<workers {
            group.addTask {
                var latencies: [Double] = []
                while true {
                    let index = next.value.add(1, ordering: .relaxed).oldValue
                    guard index < count else { return latencies }
                    let start = ContinuousClock.now
                    try await operation(index)
                    latencies.append(seconds(ContinuousClock.now - start))
                }
            }
        }
        return try await group.reduce(into: []) { $0 += $1 }
    }
}

/// A pod as kubectl would create it, about 1 KiB of JSON.
enum PodTemplate {
    static func pod(name: String, node: String) -> JSONValue {
        let text = """
            {"apiVersion":"v1","kind":"Pod","metadata":{"name":"\(name)","namespace":"bench","labels":{"app":"bench","tier":"edge"},\
            "annotations":{"kubeedge.io/owner":"api-bench"}},"spec":{"nodeName":"\(node)","restartPolicy":"Always",\
            "terminationGracePeriodSeconds":30,"containers":[{"name":"app","image":"registry.local/app:1.0","command":["/bin/app"],\
            "args":["--port","8080"],"ports":[{"containerPort":8080,"protocol":"TCP"}],"env":[{"name":"MODE","value":"edge"}],\
            "resources":{"limits":{"cpu":"500m","memory":"128Mi"},"requests":{"cpu":"100m","memory":"64Mi"}},\
            "readinessProbe":{"httpGet":{"path":"/healthz","port":8080},"periodSeconds":10},\
            "volumeMounts":[{"name":"config","mountPath":"/etc/app"}]}],"volumes":[{"name":"config","configMap":{"name":"app-config"}}],\
            "tolerations":[{"key":"node-role.kubernetes.io/edge","operator":"Exists","effect":"NoSchedule"}]},"status":{"phase":"Pending"}}
            """
        return try! JSONValue(parsing: Array(text.utf8))
    }
}

/// The baseline: the same rows in SQLite with the store's settings (WAL), no server, on the
/// database's own thread as the store's statements run.
final class RawSQLite: Sendable {
    let db: Database

    init(path: String) throws {
        db = try Database(path: path)
    }

    func createTable() async throws {
        try await db.exclusive { db in try db.execute("CREATE TABLE objects (key TEXT PRIMARY KEY, value BLOB NOT NULL)") }
    }

    /// Inserts each row in its own transaction; rows per second.
    func insert(_ rows: [[UInt8]]) async throws -> Double {
        try await db.exclusive { (db) throws -> Double in
            let insert = try db.statement("INSERT INTO objects(key, value) VALUES (?, ?)")
            let start = ContinuousClock.now
            for (index, row) in rows.enumerated() {
                insert.bind("pods/bench/pod-\(index)", at: 1)
                insert.bind(bytes: row, at: 2)
                try insert.run()
            }
            return Double(rows.count) / seconds(ContinuousClock.now - start)
        }
    }

    /// Reads every row's bytes in key order; seconds.
    func readAll() async throws -> Double {
        try await db.read { (db) throws -> Double in
            let read = try db.statement("SELECT value FROM objects ORDER BY key")
            defer { read.reset() }
            let start = ContinuousClock.now
            var bytes = 0
            while try read.step() { bytes += read.bytes(at: 0).count }
            precondition(bytes > 0)
            return seconds(ContinuousClock.now - start)
        }
    }
}

/// A counter tasks share.
final class SharedCount: Sendable {
    let value = Atomic<Int>(0)
}

/// Ends a watch once it delivered what was measured.
struct WatchedEnough: Error {}

struct BenchFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

func seconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
}

func percentile(_ values: [Double], _ fraction: Double) -> Double {
    guard !values.isEmpty else { return 0 }
    let sorted = values.sorted()
    return sorted[min(sorted.count - 1, Int(Double(sorted.count - 1) * fraction))]
}

func format(_ rate: Double) -> String { rate >= 10_000 ? String(format: "%.0fk/s", rate / 1000) : String(format: "%.0f/s", rate) }
func ms(_ value: Double) -> String { String(format: "%.2f ms", value * 1000) }
func ratio(_ ours: Double, _ baseline: Double) -> String { baseline > 0 ? String(format: "%.2f", ours / baseline) : "–" }
