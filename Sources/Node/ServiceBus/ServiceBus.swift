import Foundation
import Logging
import ServiceLifecycle
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization
import Transport

/// KubeEdge's ServiceBus: lets cloud callers reach HTTP servers on this node. A message whose
/// content is a ``ServiceRequest`` becomes one HTTP/1.1 call to a local URL; the answer returns
/// as the response message (parent id = the request's id) with a ``ServiceResponse``.
///
/// Only hosts in ``Configuration/allowedHosts`` (loopback by default) may be called: the cloud
/// cannot use a node to reach its network. Every failure is a response with a status and the
/// reason, never a silence: 400 (malformed), 403 (host not allowed), 413 (request too large),
/// 502 (unreachable, or the answer is too large), 504 (no answer within the timeout).
public final class ServiceBus: Service, Sendable {
    /// Limits, with documented defaults.
    public struct Configuration: Sendable {
        /// How long a call may take, connecting included. Default 30 s.
        public var timeout: Duration
        /// The largest request body passed on. Default 1 MiB.
        public var maxRequestBytes: Int
        /// The largest answer body returned. Default 4 MiB.
        public var maxResponseBytes: Int
        /// Hosts that may be called. Default `127.0.0.1`, `localhost`, `::1`.
        public var allowedHosts: Set<String>
        /// Calls in progress at once; more wait. Default 64.
        public var maxConcurrentCalls: Int

        public init(timeout: Duration = .seconds(30), maxRequestBytes: Int = 1 << 20, maxResponseBytes: Int = 4 << 20,
                    allowedHosts: Set<String> = ["127.0.0.1", "localhost", "::1"], maxConcurrentCalls: Int = 64) {
            self.timeout = timeout
            self.maxRequestBytes = maxRequestBytes
            self.maxResponseBytes = maxResponseBytes
            self.allowedHosts = allowedHosts
            self.maxConcurrentCalls = maxConcurrentCalls
        }
    }

    /// The bus module name and group (cloud messages of group `servicebus` come here).
    public static let moduleName = "servicebus"
    public static let moduleGroup = "servicebus"

    public let configuration: Configuration
    private let bus: MessageBus
    private let endpoint: BusEndpoint
    private let client: LocalHTTPClient
    private let logger: Logger
    private let slots: QuerySlots
    private let counters = Mutex(ServiceBusCounters())

    /// Creates the module and registers it on `bus`.
    public init(configuration: Configuration = Configuration(), bus: MessageBus, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
                logger: Logger = Logger(label: "servicebus")) {
        self.configuration = configuration
        self.bus = bus
        self.logger = logger
        client = LocalHTTPClient(group: group)
        slots = QuerySlots(limit: configuration.maxConcurrentCalls)
        endpoint = bus.register(module: Self.moduleName, group: Self.moduleGroup)
    }

    /// Serves every lane until graceful shutdown (or cancellation) takes the module off the
    /// bus; returns once the calls in progress have finished.
    public func run() async {
        await ModuleRun.run(module: Self.moduleName, bus: bus) { [self] lane in await serve(lane: lane) }
    }

    /// What the module counted.
    public var statistics: ServiceBusCounters { counters.withLock { $0 } }

    /// Each call runs in a child task of the lane (at most
    /// ``Configuration/maxConcurrentCalls`` at once), which the lane waits for.
    private func serve(lane: Lane) async {
        await withDiscardingTaskGroup { calls in
            for await message in endpoint.messages(on: lane) {
                guard message.header.parentID == nil else { continue }
                let slot = await slots.acquire()
                calls.addTask { [self] in
                    let answer = await call(message)
                    var response = message.makeResponse(content: ByteBuffer(bytes: (try? JSONEncoder().encode(answer)) ?? Data()), source: Self.moduleName)
                    response.router.operation = MessageRouter.Operation.response
                    do {
                        try await endpoint.send(response, toGroup: MetaManager.hubGroup, on: lane)
                    } catch {
                        logger.warning("could not return an answer", metadata: ["error": "\(error)"])
                    }
                    slot.release()
                }
            }
        }
    }

    /// The answer to one request message.
    func call(_ message: Message) async -> ServiceResponse {
        let request: ServiceRequest
        do {
            request = try JSONDecoder().decode(ServiceRequest.self, from: Data(message.content.readableBytesView))
        } catch {
            return refuse(400, "malformed service request: \(error)")
        }
        guard let url = URLComponents(string: request.url), url.scheme == "http", let host = url.host, !host.isEmpty else {
            return refuse(400, "url must be http://host[:port]/path, not \(request.url)")
        }
        guard configuration.allowedHosts.contains(host) else { return refuse(403, "host \(host) is not one this node lets the cloud call") }
        let body = request.body ?? Data()
        guard body.count <= configuration.maxRequestBytes else {
            return refuse(413, "request body of \(body.count) bytes is over the limit of \(configuration.maxRequestBytes)")
        }
        let method = HTTPMethod(rawValue: request.method.uppercased())
        var path = url.percentEncodedPath.isEmpty ? "/" : url.percentEncodedPath
        if let query = url.percentEncodedQuery { path += "?\(query)" }
        var head = HTTPRequestHead(version: .http1_1, method: method, uri: path)
        for (name, values) in request.header ?? [:] where !["host", "content-length", "connection", "transfer-encoding"].contains(name.lowercased()) {
            for value in values { head.headers.add(name: name, value: value) }
        }
        head.headers.replaceOrAdd(name: "Host", value: url.port.map { "\(host):\($0)" } ?? host)
        head.headers.replaceOrAdd(name: "Connection", value: "close")
        if !body.isEmpty || [.POST, .PUT, .PATCH].contains(method) { head.headers.replaceOrAdd(name: "Content-Length", value: "\(body.count)") }
        do {
            let answer = try await client.perform(
                head, body: body.isEmpty ? nil : ByteBuffer(bytes: body), host: host, port: url.port ?? 80, timeout: configuration.timeout,
                maxResponseBytes: configuration.maxResponseBytes)
            counters.withLock { $0.calls += 1 }
            var headers: [String: [String]] = [:]
            for (name, value) in answer.headers { headers[name, default: []].append(value) }
            return ServiceResponse(statusCode: answer.status, header: headers, body: Data(answer.body.readableBytesView))
        } catch LocalHTTPClient.Failure.timedOut {
            return refuse(504, "no answer from \(host):\(url.port ?? 80) within \(configuration.timeout)")
        } catch LocalHTTPClient.Failure.tooLarge(let limit) {
            return refuse(502, "the answer is over the limit of \(limit) bytes")
        } catch {
            return refuse(502, "\(error)")
        }
    }

    private func refuse(_ status: Int, _ reason: String) -> ServiceResponse {
        counters.withLock { $0.refused += 1 }
        logger.info("service request failed", metadata: ["status": "\(status)", "reason": "\(reason)"])
        return ServiceResponse(statusCode: status, header: ["Content-Type": ["text/plain"]], body: Data(reason.utf8))
    }
}

/// What ServiceBus counted since it started.
public struct ServiceBusCounters: Sendable, Equatable {
    /// Calls answered by a local server.
    public var calls = 0
    /// Requests answered by ServiceBus itself with an error status.
    public var refused = 0
}
