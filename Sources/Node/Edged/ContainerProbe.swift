import Foundation
import KubeModel
import NIOCore
import NIOHTTP1
import NIOPosix

/// One of a container's probes (`livenessProbe`, `readinessProbe`, `startupProbe`) as kubelet
/// reads it, with kubelet's defaults: every 10 s, 1 s to answer, 1 success and 3 failures to
/// change its verdict, no initial delay.
struct ContainerProbe: Sendable, Equatable {
    enum Action: Sendable, Equatable {
        case exec([String])
        case httpGet(host: String, port: Int, path: String, headers: [(String, String)])
        case tcpSocket(host: String, port: Int)

        static func == (left: Action, right: Action) -> Bool {
            switch (left, right) {
            case (.exec(let a), .exec(let b)): a == b
            case (.httpGet(let h1, let p1, let q1, let x1), .httpGet(let h2, let p2, let q2, let x2)):
                h1 == h2 && p1 == p2 && q1 == q2 && x1.elementsEqual(x2) { $0 == $1 }
            case (.tcpSocket(let h1, let p1), .tcpSocket(let h2, let p2)): h1 == h2 && p1 == p2
            default: false
            }
        }
    }

    var action: Action
    var initialDelay: TimeInterval
    var period: TimeInterval
    var timeout: Duration
    var successThreshold: Int
    var failureThreshold: Int

    /// The probe in `json`, or why it cannot run. Named ports are looked up in the container's
    /// `ports`; the host defaults to the pod's address, which for host processes is loopback.
    static func parse(_ json: JSONValue, container: Kube.Container) -> Result<ContainerProbe, ContainerRuntimeError> {
        func number(_ key: String, _ fallback: Int64, minimum: Int64) -> Int64 { max(minimum, json[key]?.int64Value ?? fallback) }
        func port(_ value: JSONValue?) -> Int? {
            if let number = value?.int64Value { return (1...65_535).contains(number) ? Int(number) : nil }
            guard let name = value?.stringValue else { return nil }
            if let number = Int(name) { return (1...65_535).contains(number) ? number : nil }
            let declared = container.json["ports"].elements.first { $0["name"]?.stringValue == name }
            return declared?["containerPort"]?.int64Value.map(Int.init)
        }
        let action: Action
        if let command = json[path: ["exec", "command"]]?.arrayValue {
            action = .exec(command.compactMap(\.stringValue))
            if command.isEmpty { return .failure(failure("exec probe without a command")) }
        } else if let http = json["httpGet"] {
            guard let number = port(http["port"]) else { return .failure(failure("httpGet probe port \(http["port"]?.serialized ?? "missing") is not a port of the container")) }
            if http["scheme"]?.stringValue == "HTTPS" { return .failure(failure("HTTPS probes are not supported by Edged")) }
            let headers = http["httpHeaders"].elements.compactMap { header -> (String, String)? in
                guard let name = header["name"]?.stringValue else { return nil }
                return (name, header["value"]?.stringValue ?? "")
            }
            let path = http["path"]?.stringValue ?? "/"
            action = .httpGet(host: http["host"]?.stringValue ?? "127.0.0.1", port: number, path: path.hasPrefix("/") ? path : "/" + path, headers: headers)
        } else if let tcp = json["tcpSocket"] {
            guard let number = port(tcp["port"]) else { return .failure(failure("tcpSocket probe port \(tcp["port"]?.serialized ?? "missing") is not a port of the container")) }
            action = .tcpSocket(host: tcp["host"]?.stringValue ?? "127.0.0.1", port: number)
        } else if json["grpc"] != nil {
            return .failure(failure("gRPC probes are not supported by Edged"))
        } else {
            return .failure(failure("a probe needs exec, httpGet or tcpSocket"))
        }
        return .success(ContainerProbe(
            action: action, initialDelay: TimeInterval(number("initialDelaySeconds", 0, minimum: 0)),
            period: TimeInterval(number("periodSeconds", 10, minimum: 1)), timeout: .seconds(number("timeoutSeconds", 1, minimum: 1)),
            successThreshold: Int(number("successThreshold", 1, minimum: 1)), failureThreshold: Int(number("failureThreshold", 3, minimum: 1))))
    }

    private static func failure(_ message: String) -> ContainerRuntimeError {
        ContainerRuntimeError(reason: "CreateContainerConfigError", message: message)
    }
}

/// Runs probes: exec in the container through its runtime, HTTP GET (a 2xx or 3xx answer
/// succeeds), TCP connect.
public struct ContainerProber: Sendable {
    private let group: any EventLoopGroup
    private let http: LocalHTTPClient

    public init(group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) {
        self.group = group
        http = LocalHTTPClient(group: group)
    }

    /// Whether the probe passed, and what it said when it did not.
    func run(_ probe: ContainerProbe, in id: ContainerID, runtime: any ContainerRuntime) async -> (passed: Bool, message: String) {
        switch probe.action {
        case .exec(let command):
            let result = await runtime.exec(in: id, command: command, timeout: probe.timeout)
            if result.timedOut { return (false, "command timed out after \(probe.timeout)") }
            guard let code = result.exitCode else { return (false, result.output) }
            return code == 0 ? (true, "") : (false, "command exited with \(code): \(result.output.prefix(200))")
        case .httpGet(let host, let port, let path, let headers):
            var head = HTTPRequestHead(version: .http1_1, method: .GET, uri: path)
            head.headers.add(name: "Host", value: "\(host):\(port)")
            head.headers.add(name: "User-Agent", value: "kube-probe/1.30")
            head.headers.add(name: "Accept", value: "*/*")
            head.headers.add(name: "Connection", value: "close")
            for (name, value) in headers { head.headers.replaceOrAdd(name: name, value: value) }
            do {
                let answer = try await http.perform(head, body: nil, host: host, port: port, timeout: probe.timeout, maxResponseBytes: 10 * 1024)
                return (200..<400).contains(answer.status) ? (true, "") : (false, "HTTP probe failed with statuscode: \(answer.status)")
            } catch {
                return (false, "Get \"http://\(host):\(port)\(path)\": \(error)")
            }
        case .tcpSocket(let host, let port):
            do {
                let channel = try await ClientBootstrap(group: group)
                    .connectTimeout(.milliseconds(Int64(probe.timeout.components.seconds * 1000)))
                    .connect(host: host, port: port).get()
                try? await channel.close()
                return (true, "")
            } catch {
                return (false, "dial tcp \(host):\(port): \(error)")
            }
        }
    }
}
