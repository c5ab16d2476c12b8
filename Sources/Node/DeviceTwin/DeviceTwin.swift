import Foundation
import Logging
import ServiceLifecycle
import NIOCore
import Synchronization
import Transport

/// KubeEdge's DeviceTwin: the devices bound to this node and their twins (expected and actual
/// values with timestamps and versions), kept in a ``DeviceStore``.
///
/// From devices over MQTT (through EventBus, the topic base64-encoded as resource):
/// - `…/twin/update`: actual values reported (or expected ones set by an app) → stored, then
///   `…/twin/update/result`, `…/twin/update/document` and, while expected and actual differ,
///   `…/twin/update/delta`; a report to the cloud when an actual value changed.
/// - `…/twin/get` → `…/twin/get/result`; `…/state/update` → stored, `…/state/update/result`,
///   a report to the cloud; `$hw/events/node/{node}/membership/get` → `…/get/result`.
/// - Malformed JSON (400), an unknown device (404), an older version (409), an oversized
///   payload (400) and a failed write (500) are answered on the result topic with the reason.
///
/// From the cloud (group `twin`): a `devices.kubeedge.io` Device (`insert`/`update`/`upsert`,
/// `delete`) binds, changes or removes a device; changed desired values become expected values,
/// and the device gets `…/twin/update/delta` and `…/twin/update/document`; membership changes
/// are published on `$hw/events/node/{node}/membership/updated`. Cloud messages are reported
/// handled once stored.
///
/// Reports to the cloud (`update` of `{namespace}/devicestatus/{name}`, group `twin`) carry the
/// device's state and every actual value, on the state lane, where EdgeHub coalesces them per
/// device while the cloud has not acknowledged them (or, with coalescing off, on the events lane,
/// every report reliably).
public final class DeviceTwin: Service, Sendable {
    /// Settings, with documented defaults.
    public struct Configuration: Sendable {
        /// This node's name (membership topics).
        public var nodeName: String
        /// Reports coalesced per device. Default true.
        public var coalesceReports: Bool
        /// The largest MQTT payload accepted. Default 64 KiB.
        public var maxPayloadBytes: Int
        /// Messages handled (and written) in one transaction at most. Default 512.
        public var maxBatch: Int
        /// Topics for cloud-originated events name devices `{name}` (KubeEdge before 1.17;
        /// default) or `{namespace}/{name}`.
        public var namespacedTopics: Bool

        public init(nodeName: String, coalesceReports: Bool = true, maxPayloadBytes: Int = 64 * 1024, maxBatch: Int = 512, namespacedTopics: Bool = false) {
            self.nodeName = nodeName
            self.coalesceReports = coalesceReports
            self.maxPayloadBytes = maxPayloadBytes
            self.maxBatch = maxBatch
            self.namespacedTopics = namespacedTopics
        }
    }

    /// The bus module name and group (KubeEdge's).
    public static let moduleName = "twin"
    public static let moduleGroup = "twin"

    public let configuration: Configuration
    public let store: DeviceStore
    private let bus: MessageBus
    private let endpoint: BusEndpoint
    private let logger: Logger
    private let counters = Mutex(DeviceTwinCounters())

    /// Creates the module and registers it on `bus`.
    public init(configuration: Configuration, store: DeviceStore, bus: MessageBus, logger: Logger = Logger(label: "devicetwin")) {
        self.configuration = configuration
        self.store = store
        self.bus = bus
        self.logger = logger
        endpoint = bus.register(module: Self.moduleName, group: Self.moduleGroup, acknowledgesHandling: true)
    }

    /// Serves every lane until graceful shutdown (or cancellation) takes the module off the
    /// bus; returns once what was queued is handled.
    public func run() async {
        await ModuleRun.run(module: Self.moduleName, bus: bus) { [self] lane in await serve(lane: lane) }
    }

    /// What the module counted.
    public var statistics: DeviceTwinCounters { counters.withLock { $0 } }

    // MARK: serving

    private func serve(lane: Lane) async {
        var messages = endpoint.messages(on: lane).makeAsyncIterator()
        while let first = await messages.next() {
            var batch = [first]
            while batch.count < configuration.maxBatch, let more = endpoint.pollMessage(on: lane) { batch.append(more) }
            await handle(batch)
        }
    }

    /// Handles a batch: all changes in memory, one transaction, then the answers.
    private func handle(_ batch: [Message]) async {
        let initial = TwinWork(now: Self.now(), configuration: configuration)
        // What the batch did, also when the write fails (its requests are then answered 500).
        let outcome = Mutex(initial)
        var work = initial
        do {
            work = try await store.update { devices in
                var work = initial
                for message in batch { work.handle(message, devices: &devices) }
                outcome.withLock { $0 = work }
                return (Array(work.changes.values), work)
            }
        } catch {
            work = outcome.withLock { $0 }
            counters.withLock { $0.storageFailures += 1 }
            logger.error("could not store device changes; cloud messages stay unacknowledged", metadata: ["error": "\(error)"])
            var failed = TwinWork(now: work.now, configuration: configuration)
            for request in work.requests { failed.fail(request, code: 500, reason: error.description) }
            await send(failed)
            return
        }
        for message in batch { endpoint.handled(message) }
        counters.withLock { counters in
            counters.updates += work.updates
            counters.refused += work.refused
            counters.ignored += work.ignored
            counters.cloudChanges += work.cloudChanges
            counters.reports += work.reports.count
        }
        await send(work)
    }

    private func send(_ work: TwinWork) async {
        for (topic, payload) in work.publications {
            var message = Message(router: MessageRouter(
                source: Self.moduleName, destination: EventBus.moduleName, group: MessageRouter.Group.bus,
                operation: MessageRouter.Operation.publish, resource: topic), content: payload)
            message.header.timestamp = work.now
            do {
                try await endpoint.send(message, on: .events, delivery: .reliable)
            } catch {
                counters.withLock { $0.unpublished += 1 }
                logger.debug("could not publish", metadata: ["topic": "\(topic)", "error": "\(error)"])
            }
        }
        let lane: Lane = configuration.coalesceReports ? .state : .events
        for report in work.reports {
            let message = Message(router: MessageRouter(
                source: Self.moduleName, group: MessageRouter.Group.twin, operation: MessageRouter.Operation.update,
                resource: report.resource), content: report.content)
            do {
                try await endpoint.send(message, toGroup: MetaManager.hubGroup, on: lane)
            } catch {
                counters.withLock { $0.unreported += 1 }
                logger.warning("could not report to the cloud", metadata: ["resource": "\(report.resource)", "error": "\(error)"])
            }
        }
    }

    static func now() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }
}

/// What DeviceTwin counted since it started.
public struct DeviceTwinCounters: Sendable, Equatable {
    /// Twin and state updates from devices applied.
    public var updates = 0
    /// Device messages refused (malformed, unknown device, version conflict, oversized).
    public var refused = 0
    /// MQTT messages on topics DeviceTwin does not answer (its own results, echoed back).
    public var ignored = 0
    /// Device changes from the cloud applied.
    public var cloudChanges = 0
    /// Reports queued for the cloud.
    public var reports = 0
    /// Batches the store could not write.
    public var storageFailures = 0
    /// Publications EventBus could not take (no EventBus on the bus).
    public var unpublished = 0
    /// Reports EdgeHub could not take.
    public var unreported = 0
}
