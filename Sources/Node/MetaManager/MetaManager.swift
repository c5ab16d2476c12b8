import Foundation
import KubeModel
import Logging
import ServiceLifecycle
import NIOCore
import Synchronization
import Transport

/// KubeEdge's MetaManager: the edge's memory of what the cloud sent.
///
/// - Cloud writes (`insert`, `update`, `upsert`, `patch` as JSON merge patch, `delete`) are stored
///   in the ``MetaStore`` before the module reports them handled, which is when EdgeHub lets the
///   channel acknowledge them to the cloud: a crash in between makes the cloud send them again.
///   An older resource version than the one stored is ignored. Stored writes are passed on to
///   the group that runs them (``MetaManagerConfiguration/notifyGroups``).
/// - Writes from modules on this node (pod status from Edged, say) are stored and sent on to
///   the cloud through EdgeHub.
/// - `query` for `{namespace}/{type}/{name}` (one object) or `{namespace}/{type}` (a JSON array):
///   types in ``MetaManagerConfiguration/remoteQueryTypes`` are asked of the cloud first and the
///   answer is cached; when the cloud does not answer (offline, refused, timed out) and for
///   every other type, the store answers. A missing object is an `error` response.
/// Malformed messages are answered with an `error` response (when the sender waits for one),
/// logged, counted and reported handled: sending them again would not help.
public final class MetaManager: Service, Sendable {
    /// The bus module name and group (KubeEdge's).
    public static let moduleName = "metaManager"
    public static let moduleGroup = "meta"
    /// The group the cloud is reached through (EdgeHub's).
    public static let hubGroup = "hub"

    public let configuration: MetaManagerConfiguration
    /// The SQLite store MetaServer reads too.
    public let store: MetaStore
    private let bus: MessageBus
    private let endpoint: BusEndpoint
    private let logger: Logger
    private let counters = Mutex(MetaManagerCounters())
    private let querySlots: QuerySlots

    /// Creates the module and registers it on `bus`.
    public init(configuration: MetaManagerConfiguration = MetaManagerConfiguration(), store: MetaStore, bus: MessageBus, logger: Logger = Logger(label: "metamanager")) {
        self.configuration = configuration
        self.store = store
        self.bus = bus
        self.logger = logger
        querySlots = QuerySlots(limit: configuration.maxConcurrentQueries)
        endpoint = bus.register(module: Self.moduleName, group: Self.moduleGroup, acknowledgesHandling: true)
    }

    /// Serves every lane until graceful shutdown (or cancellation) takes the module off the
    /// bus; returns once what was queued is handled and every query is answered.
    public func run() async {
        await ModuleRun.run(module: Self.moduleName, bus: bus) { [self] lane in await serve(lane: lane) }
    }

    /// What the module counted.
    public var statistics: MetaManagerCounters { counters.withLock { $0 } }

    // MARK: serving

    /// Takes a burst of messages at once: writes are stored in one transaction (a patch, which
    /// reads what is stored, goes alone), queries are answered concurrently.
    /// A batch commits while the next one is taken and prepared; batches are finished (reported
    /// handled, answered, passed on) in order, and before a query or a patch is looked at, so
    /// both see every write that came before them.
    /// Queries are answered in child tasks of the lane (at most
    /// ``MetaManagerConfiguration/maxConcurrentQueries`` at once), which the lane waits for.
    private func serve(lane: Lane) async {
        await withDiscardingTaskGroup { queries in
            var messages = endpoint.messages(on: lane).makeAsyncIterator()
            var committing: SubmittedWrites?
            while true {
                var next = endpoint.pollMessage(on: lane)
                if next == nil {
                    // Nothing more to overlap the commit with: finish it, then wait.
                    if let batch = committing { await finish(batch, on: lane) }
                    committing = nil
                    next = await messages.next()
                    if next == nil { break }
                }
                var writes: [Message] = []
                while let message = next {
                    let operation = message.router.operation
                    if operation == MessageRouter.Operation.patch || operation == MessageRouter.Operation.query {
                        if let batch = committing { await finish(batch, on: lane) }
                        committing = nil
                        if !writes.isEmpty { await finish(await submit(writes), on: lane) }
                        writes = []
                    }
                    if operation == MessageRouter.Operation.patch {
                        await finish(await submit([message]), on: lane)
                    } else if await !dispatch(message, on: lane, queries: &queries) {
                        writes.append(message)
                    }
                    next = writes.count < configuration.maxBatch ? endpoint.pollMessage(on: lane) : nil
                }
                guard !writes.isEmpty else { continue }
                let submitted = await submit(writes)
                if let batch = committing { await finish(batch, on: lane) }
                committing = submitted
            }
            if let batch = committing { await finish(batch, on: lane) }
        }
    }

    /// Handles a message that is not a write; `false` for a write.
    private func dispatch(_ message: Message, on lane: Lane, queries: inout DiscardingTaskGroup) async -> Bool {
        switch message.router.operation {
            case MessageRouter.Operation.query:
                let slot = await querySlots.acquire()
                queries.addTask { [self] in
                    await answer(message, on: lane)
                    slot.release()
                }
                return true
            case MessageRouter.Operation.error, MessageRouter.Operation.response:
                // An answer nobody waits for any more (a refusal of something this node sent, a
                // late query answer): noted, never answered back.
                endpoint.handled(message)
                if message.router.operation == MessageRouter.Operation.error {
                    counters.withLock { $0.errorsReceived += 1 }
                    logger.warning("the cloud refused a message from this node", metadata: [
                        "resource": "\(message.router.resource)", "reason": "\(String(buffer: message.content))",
                    ])
                }
                return true
            default:
                return false
            }
    }

    private func isLocal(_ message: Message) -> Bool { configuration.localModules.contains(message.router.source) }

    /// Writes handed to the store, with what their preparation found.
    private struct SubmittedWrites {
        let messages: [Message]
        let prepared: [Result<MetaWrite, MetaError>]
        let pending: MetaStore.PendingMetaWrites
    }

    /// Prepares `messages` and hands the valid writes to the store in one transaction, without
    /// waiting for it to commit.
    private func submit(_ messages: [Message]) async -> SubmittedWrites {
        var prepared: [Result<MetaWrite, MetaError>] = []
        prepared.reserveCapacity(messages.count)
        for message in messages {
            do throws(MetaError) { prepared.append(.success(try await prepare(message))) } catch { prepared.append(.failure(error)) }
        }
        return SubmittedWrites(messages: messages, prepared: prepared, pending: store.submit(prepared.compactMap { try? $0.get() }))
    }

    /// Waits for the batch's commit, then finishes each of its messages in order.
    private func finish(_ batch: SubmittedWrites, on lane: Lane) async {
        let applied: Result<[MetaWriteOutcome], MetaError>
        do throws(MetaError) { applied = .success(try await batch.pending.outcomes()) } catch { applied = .failure(error) }
        var outcomes = (try? applied.get())?.makeIterator()
        for (message, preparation) in zip(batch.messages, batch.prepared) {
            switch (preparation, applied) {
            case (.failure(let error), _): await finish(message, .failure(error), on: lane)
            case (.success, .failure(let error)): await finish(message, .failure(error), on: lane)
            case (.success, .success):
                guard let outcome = outcomes?.next() else { continue }
                await finish(message, .success(outcome), on: lane)
            }
        }
    }

    /// Reports a write handled (unless the store failed), answers it, then tells the cloud
    /// (local writes) or the modules that run it (cloud writes).
    private func finish(_ message: Message, _ outcome: Result<MetaWriteOutcome, MetaError>, on lane: Lane) async {
        if case .failure(.storage) = outcome {
            // Not reported handled: the cloud keeps the message and sends it again.
            counters.withLock { $0.storageFailures += 1 }
            logger.error("could not store a cloud message", metadata: ["resource": "\(message.router.resource)", "error": "\(outcome)"])
            await reply(to: message, with: outcome.map { _ in () }, on: lane)
            return
        }
        endpoint.handled(message)
        switch outcome {
        case .failure(let error):
            counters.withLock { $0.refused += 1 }
            logger.warning("refused a message", metadata: [
                "source": "\(message.router.source)", "operation": "\(message.router.operation)", "resource": "\(message.router.resource)",
                "error": "\(error)",
            ])
            await reply(to: message, with: .failure(error), on: lane)
            return
        case .success(.stale(let stored)):
            counters.withLock { $0.stale += 1 }
            logger.debug("ignored an older version", metadata: ["resource": "\(message.router.resource)", "stored": "\(stored)"])
        case .success(.absent), .success(.applied):
            counters.withLock { $0.stored += 1 }
        }
        await reply(to: message, with: .success(()), on: lane)
        guard case .success(.applied) = outcome else { return }
        if isLocal(message) {
            await forward(message, toGroup: Self.hubGroup, on: lane)
        } else if let key = ResourceKey(resource: message.router.resource), let group = configuration.notifyGroups[key.type] {
            await forward(message, toGroup: group, on: lane)
        }
    }

    /// The store change a write message asks for.
    private func prepare(_ message: Message) async throws(MetaError) -> MetaWrite {
        guard let key = ResourceKey(resource: message.router.resource), key.isObject else {
            throw MetaError.malformedResource(message.router.resource)
        }
        guard message.content.readableBytes <= configuration.maxObjectBytes else {
            throw MetaError.malformedObject("\(message.content.readableBytes) bytes is more than the limit of \(configuration.maxObjectBytes)")
        }
        let content = message.content.readableBytesView
        switch message.router.operation {
        case MessageRouter.Operation.insert, MessageRouter.Operation.update, MessageRouter.Operation.upsert:
            let metadata = try ObjectMetadata(json: content)
            return .upsert(key, json: String(decoding: content, as: UTF8.self), resourceVersion: metadata.resourceVersion ?? Int64(message.header.resourceVersion))
        case MessageRouter.Operation.patch:
            let merged = try Self.mergePatch(content, onto: try await store.get(key)?.json)
            let metadata = try ObjectMetadata(json: merged.utf8)
            return .upsert(key, json: merged, resourceVersion: metadata.resourceVersion)
        case MessageRouter.Operation.delete:
            let version = content.isEmpty ? nil : try ObjectMetadata(json: content).resourceVersion
            return .delete(key, resourceVersion: version ?? Int64(message.header.resourceVersion))
        default:
            throw MetaError.unsupportedOperation(message.router.operation)
        }
    }

    /// `patch` (JSON merge patch) applied to the stored object, as JSON text.
    private static func mergePatch(_ patch: ByteBufferView, onto stored: String?) throws(MetaError) -> String {
        do {
            let base = try stored.map { json throws(JSONParseError) in try JSONValue(parsing: json) } ?? .null
            return base.applyingMergePatch(try JSONValue(parsing: patch)).serialized
        } catch {
            throw MetaError.malformedObject("merge patch: \(error)")
        }
    }

    // MARK: queries

    private func answer(_ query: Message, on lane: Lane) async {
        guard let key = ResourceKey(resource: query.router.resource) else {
            await reply(to: query, with: .failure(MetaError.malformedResource(query.router.resource)), on: lane)
            return
        }
        if configuration.remoteQueryTypes.contains(key.type), isLocal(query), let answer = await askCloud(query, key: key) {
            counters.withLock { $0.remoteAnswers += 1 }
            await send(query.makeResponse(content: answer, source: Self.moduleName), answering: query, on: lane)
            return
        }
        counters.withLock { $0.localAnswers += 1 }
        do {
            let content = try await localAnswer(for: key)
            await send(query.makeResponse(content: content, source: Self.moduleName), answering: query, on: lane)
        } catch {
            await reply(to: query, with: .failure(error), on: lane)
        }
    }

    /// The cloud's answer to `query`, cached; `nil` when the cloud did not give one.
    private func askCloud(_ query: Message, key: ResourceKey) async -> ByteBuffer? {
        var ask = Message(
            header: MessageHeader(),
            router: MessageRouter(source: Self.moduleName, group: MessageRouter.Group.resource, operation: MessageRouter.Operation.query, resource: key.description),
            content: query.content)
        ask.header.sync = true
        do {
            let answer = try await endpoint.request(ask, toGroup: Self.hubGroup, on: .request, timeout: configuration.remoteQueryTimeout)
            guard answer.router.operation != MessageRouter.Operation.error else {
                throw MetaError.notFound("the cloud answered: \(String(buffer: answer.content))")
            }
            try await cache(answer.content, for: key)
            return answer.content
        } catch {
            counters.withLock { $0.remoteFailures += 1 }
            logger.debug("the cloud did not answer a query; answering from the store", metadata: ["resource": "\(key)", "error": "\(error)"])
            return nil
        }
    }

    /// Stores what the cloud answered: one object, or every object of a list.
    private func cache(_ content: ByteBuffer, for key: ResourceKey) async throws {
        let data = Data(content.readableBytesView)
        var writes: [MetaWrite] = []
        if key.isObject {
            let metadata = try ObjectMetadata(json: data)
            writes.append(.upsert(key, json: String(decoding: data, as: UTF8.self), resourceVersion: metadata.resourceVersion))
        } else {
            guard let items = try JSONSerialization.jsonObject(with: data) as? [Any] else {
                throw MetaError.malformedObject("a list query must be answered with a JSON array")
            }
            for item in items {
                let json = try JSONSerialization.data(withJSONObject: item, options: [.sortedKeys])
                let metadata = try ObjectMetadata(json: json)
                guard let name = metadata.name else { continue }
                let objectKey = ResourceKey(namespace: metadata.namespace ?? key.namespace, type: key.type, name: name)
                writes.append(.upsert(objectKey, json: String(decoding: json, as: UTF8.self), resourceVersion: metadata.resourceVersion))
            }
        }
        _ = try await store.apply(writes)
    }

    /// The store's answer: the object's JSON, or a JSON array of the type's objects.
    private func localAnswer(for key: ResourceKey) async throws(MetaError) -> ByteBuffer {
        if key.isObject {
            guard let object = try await store.get(key) else { throw MetaError.notFound(key.description) }
            return ByteBuffer(string: object.json)
        }
        let objects = try await store.list(type: key.type, namespace: key.namespace.isEmpty ? nil : key.namespace).objects
        var buffer = ByteBuffer()
        buffer.writeInteger(UInt8(ascii: "["))
        for (index, object) in objects.enumerated() {
            if index > 0 { buffer.writeInteger(UInt8(ascii: ",")) }
            buffer.writeString(object.json)
        }
        buffer.writeInteger(UInt8(ascii: "]"))
        return buffer
    }

    // MARK: sending

    /// Answers a message whose sender waits for an answer: `OK`, or an `error` with the reason.
    private func reply(to message: Message, with result: Result<Void, MetaError>, on lane: Lane) async {
        guard message.header.sync || message.router.operation == MessageRouter.Operation.query else { return }
        var response: Message
        switch result {
        case .success:
            response = message.makeResponse(content: ByteBuffer(string: "OK"), source: Self.moduleName)
        case .failure(let error):
            response = message.makeResponse(content: ByteBuffer(string: error.description), source: Self.moduleName)
            response.router.operation = MessageRouter.Operation.error
        }
        await send(response, answering: message, on: lane)
    }

    /// Sends a response to a module on this node by name, or to the cloud through the hub.
    private func send(_ response: Message, answering request: Message, on lane: Lane) async {
        do {
            if isLocal(request) {
                try await endpoint.send(response, on: lane, delivery: .reliable)
            } else {
                try await endpoint.send(response, toGroup: Self.hubGroup, on: lane)
            }
        } catch {
            logger.warning("could not answer", metadata: ["to": "\(request.router.source)", "error": "\(error)"])
        }
    }

    private func forward(_ message: Message, toGroup group: String, on lane: Lane) async {
        do {
            try await endpoint.send(message, toGroup: group, on: lane)
        } catch BusError.unknownDestination {
            // Nobody runs this here (no Edged on this node, say).
        } catch {
            logger.warning("could not pass a stored change on", metadata: ["group": "\(group)", "error": "\(error)"])
        }
    }
}

/// What MetaManager counted since it started.
public struct MetaManagerCounters: Sendable, Equatable {
    /// Writes applied (or deletes of something already gone).
    public var stored = 0
    /// Writes older than what was stored, ignored.
    public var stale = 0
    /// Malformed or unsupported messages.
    public var refused = 0
    /// Writes the store could not make (left unacknowledged for the cloud to send again).
    public var storageFailures = 0
    /// Queries the cloud answered.
    public var remoteAnswers = 0
    /// Queries answered from the store.
    public var localAnswers = 0
    /// Queries the cloud did not answer.
    public var remoteFailures = 0
    /// Refusals the cloud sent back for messages from this node.
    public var errorsReceived = 0
}
