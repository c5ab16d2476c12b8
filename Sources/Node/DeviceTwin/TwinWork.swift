import Foundation
import NIOCore
import Transport

/// The work of one batch: how each message changes the devices, and what to publish and report
/// once the changes are stored. Pure: no I/O.
struct TwinWork: Sendable {
    let now: Int64
    let configuration: DeviceTwin.Configuration
    var changes: [String: DeviceChange] = [:]
    var publications: [(topic: String, payload: ByteBuffer)] = []
    var reports: [(resource: String, content: ByteBuffer)] = []
    /// Device requests answered in this batch, to answer with an error if the write fails.
    var requests: [Request] = []
    var updates = 0
    var refused = 0
    var ignored = 0
    var cloudChanges = 0

    struct Request: Sendable {
        var topic: TwinTopic
        var eventID: String
    }

    init(now: Int64, configuration: DeviceTwin.Configuration) {
        self.now = now
        self.configuration = configuration
    }

    mutating func handle(_ message: Message, devices: inout DeviceTable) {
        if message.router.source == EventBus.moduleName || message.router.operation == MessageRouter.Operation.publish {
            handleDevice(message, devices: &devices)
        } else {
            handleCloud(message, devices: &devices)
        }
    }

    // MARK: from devices

    private mutating func handleDevice(_ message: Message, devices: inout DeviceTable) {
        guard let topicName = Self.topic(fromResource: message.router.resource), let topic = TwinTopic(topicName) else {
            ignored += 1  // not a topic DeviceTwin answers (its own publications come back too)
            return
        }
        let payload = message.content.readableBytesView
        let withinLimit = payload.count <= configuration.maxPayloadBytes
        // A twin update is decoded once; its event id comes with it.
        var decodedUpdate: Result<TwinUpdate, any Error>?
        if case .twinUpdate = topic, withinLimit {
            decodedUpdate = Result { try JSONDecoder().decode(TwinUpdate.self, from: Data(payload)) }
        }
        let eventID: String
        if case .success(let update)? = decodedUpdate {
            eventID = update.eventID ?? ""
        } else {
            eventID = Self.eventID(in: payload)
        }
        let request = Request(topic: topic, eventID: eventID)
        requests.append(request)
        guard withinLimit else {
            return fail(request, code: 400, reason: "payload of \(payload.count) bytes is over the limit of \(configuration.maxPayloadBytes)")
        }
        switch topic {
        case .twinUpdate(let id):
            let update: TwinUpdate
            switch decodedUpdate {
            case .success(let decoded)?: update = decoded
            case .failure(let error)?: return fail(request, code: 400, reason: "malformed twin update: \(Self.describe(error))")
            case nil: return
            }
            guard let device = devices.resolve(id) else { return fail(request, code: 404, reason: "device \(id) not found") }
            applyTwinUpdate(update, to: device, topicID: id, request: request, devices: &devices)
        case .twinGet(let id):
            guard let device = devices.resolve(id) else { return fail(request, code: 404, reason: "device \(id) not found") }
            publish(TwinTopic.device(id, "twin/get/result"), TwinResult(eventID: eventID, timestamp: now, code: 200, twin: device.twin))
        case .stateUpdate(let id):
            let update: DeviceStateUpdate
            do {
                update = try JSONDecoder().decode(DeviceStateUpdate.self, from: Data(payload))
            } catch {
                return fail(request, code: 400, reason: "malformed state update: \(Self.describe(error))")
            }
            guard ["online", "offline", "unknown"].contains(update.state) else {
                return fail(request, code: 400, reason: "state must be online, offline or unknown, not \(update.state)")
            }
            guard var device = devices.resolve(id) else { return fail(request, code: 404, reason: "device \(id) not found") }
            device.state = update.state
            if update.state == "online" { device.lastOnline = Self.rfc3339(now) }
            devices[device.id] = device
            changes[device.id, default: DeviceChange(id: device.id)].device = true
            updates += 1
            publish(TwinTopic.device(id, "state/update/result"), TwinResult(eventID: eventID, timestamp: now, code: 200))
            report(device)
        case .membershipGet(let node):
            guard node == configuration.nodeName else { return fail(request, code: 404, reason: "node \(node) is not this node") }
            publish(TwinTopic.membership(node, "get/result"), Membership(eventID: eventID, timestamp: now, devices: Self.members(devices.values)))
        }
    }

    private mutating func applyTwinUpdate(_ update: TwinUpdate, to original: DeviceRecord, topicID: String, request: Request, devices: inout DeviceTable) {
        var device = original
        var document: [String: TwinDocument.Change] = [:]
        var actualChanged = false
        for (name, incoming) in update.twin {
            let last = device.twin[name]
            if let version = incoming.actualVersion, let stored = last?.actualVersion, version.edge < stored.edge {
                return fail(request, code: 409, reason: "version conflict on \(name): actual version \(version.edge) is older than \(stored.edge)")
            }
            if let version = incoming.expectedVersion, let stored = last?.expectedVersion, version.edge < stored.edge {
                return fail(request, code: 409, reason: "version conflict on \(name): expected version \(version.edge) is older than \(stored.edge)")
            }
            var property = last ?? TwinProperty(optional: incoming.optional ?? true, type: incoming.metadata?.type)
            if let actual = incoming.actual {
                property.actual = TwinValue(value: actual.value, timestamp: now)
                property.actualVersion = TwinVersion(cloud: property.actualVersion?.cloud ?? 0, edge: (property.actualVersion?.edge ?? 0) + 1)
                actualChanged = actualChanged || last?.actual?.value != actual.value
            }
            if let expected = incoming.expected {
                property.expected = TwinValue(value: expected.value, timestamp: now)
                property.expectedVersion = TwinVersion(cloud: property.expectedVersion?.cloud ?? 0, edge: (property.expectedVersion?.edge ?? 0) + 1)
            }
            if let type = incoming.metadata?.type { property.metadata = .init(type: type) }
            device.twin[name] = property
            document[name] = TwinDocument.Change(last: last, current: property)
            changes[device.id, default: DeviceChange(id: device.id)].twins.insert(name)
        }
        devices[device.id] = device
        updates += 1
        let updated = device.twin.filter { update.twin[$0.key] != nil }
        publish(TwinTopic.device(topicID, "twin/update/result"), TwinResult(eventID: request.eventID, timestamp: now, code: 200, twin: updated))
        publish(TwinTopic.device(topicID, "twin/update/document"), TwinDocument(eventID: request.eventID, timestamp: now, twin: document))
        publishDelta(of: device, topicID: topicID, eventID: request.eventID)
        if actualChanged { report(device) }
    }

    // MARK: from the cloud

    private mutating func handleCloud(_ message: Message, devices: inout DeviceTable) {
        let parts = message.router.resource.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[1] == "device", !parts[2].isEmpty else {
            refused += 1
            return
        }
        let id = "\(parts[0] == "null" ? "default" : parts[0])/\(parts[2])"
        switch message.router.operation {
        case MessageRouter.Operation.delete:
            guard let removed = devices[id] else { return }
            devices[id] = nil
            changes[id] = DeviceChange(id: id)
            cloudChanges += 1
            let member = Self.members([removed])
            publish(TwinTopic.membership(configuration.nodeName, "updated"),
                    Membership(eventID: UUID().uuidString, timestamp: now, removedDevices: member))
        case MessageRouter.Operation.insert, MessageRouter.Operation.update, MessageRouter.Operation.upsert:
            guard let spec = try? JSONDecoder().decode(CloudDevice.self, from: Data(message.content.readableBytesView)) else {
                refused += 1
                return
            }
            applyCloudDevice(spec, id: id, devices: &devices)
        default:
            refused += 1
        }
    }

    private mutating func applyCloudDevice(_ cloud: CloudDevice, id: String, devices: inout DeviceTable) {
        let namespace = String(id.split(separator: "/", maxSplits: 1)[0])
        let name = String(id.split(separator: "/", maxSplits: 1)[1])
        let existing = devices[id]
        var device = existing ?? DeviceRecord(namespace: namespace, name: name)
        var change = changes[id] ?? DeviceChange(id: id)
        if existing == nil { change.device = true }
        var attributes: [String: String] = [:]
        if let model = cloud.spec?.deviceModelRef?.name { attributes["deviceModel"] = model }
        if let protocolName = cloud.spec?.protocol?.protocolName { attributes["protocol"] = protocolName }
        if attributes != device.attributes {
            device.attributes = attributes
            change.attributes = true
        }
        var document: [String: TwinDocument.Change] = [:]
        let properties = cloud.spec?.properties ?? []
        for property in properties {
            let last = device.twin[property.name]
            var twin = last ?? TwinProperty(optional: true, type: property.desired?.metadata?["type"])
            let desired = property.desired?.value
            guard desired != last?.expected?.value || last == nil else { continue }
            twin.expected = desired.map { TwinValue(value: $0, timestamp: now) }
            twin.expectedVersion = TwinVersion(cloud: (twin.expectedVersion?.cloud ?? 0) + 1, edge: twin.expectedVersion?.edge ?? 0)
            if let type = property.desired?.metadata?["type"] { twin.metadata = .init(type: type) }
            device.twin[property.name] = twin
            document[property.name] = TwinDocument.Change(last: last, current: twin)
            change.twins.insert(property.name)
        }
        let kept = Set(properties.map(\.name))
        for name in device.twin.keys where !kept.contains(name) {
            device.twin.removeValue(forKey: name)
            change.twins.insert(name)
        }
        devices[id] = device
        changes[id] = change
        cloudChanges += 1
        let topicID = configuration.namespacedTopics ? id : name
        let eventID = UUID().uuidString
        if existing == nil {
            publish(TwinTopic.membership(configuration.nodeName, "updated"),
                    Membership(eventID: eventID, timestamp: now, addedDevices: Self.members([device])))
        }
        if !document.isEmpty {
            publish(TwinTopic.device(topicID, "twin/cloud_updated"), TwinUpdate(eventID: eventID, timestamp: now, twin: device.twin))
            publish(TwinTopic.device(topicID, "twin/update/document"), TwinDocument(eventID: eventID, timestamp: now, twin: document))
            publishDelta(of: device, topicID: topicID, eventID: eventID)
        }
        if change.attributes, existing != nil {
            publish(TwinTopic.device(topicID, "updated"), DeviceUpdated(eventID: eventID, timestamp: now, attributes: attributes))
        }
    }

    // MARK: output

    mutating func fail(_ request: Request, code: Int, reason: String) {
        refused += 1
        let topic: String
        switch request.topic {
        case .twinUpdate(let id): topic = TwinTopic.device(id, "twin/update/result")
        case .twinGet(let id): topic = TwinTopic.device(id, "twin/get/result")
        case .stateUpdate(let id): topic = TwinTopic.device(id, "state/update/result")
        case .membershipGet(let node): topic = TwinTopic.membership(node, "get/result")
        }
        publish(topic, TwinResult(eventID: request.eventID, timestamp: now, code: code, reason: reason))
    }

    private mutating func publishDelta(of device: DeviceRecord, topicID: String, eventID: String) {
        var delta: [String: String] = [:]
        for (name, property) in device.twin where property.hasDelta { delta[name] = property.expected?.value }
        guard !delta.isEmpty else { return }
        publish(TwinTopic.device(topicID, "twin/update/delta"), TwinDelta(eventID: eventID, timestamp: now, twin: device.twin, delta: delta))
    }

    private mutating func publish(_ topic: String, _ body: some TwinWritable) {
        var json = TwinJSON()
        body.write(to: &json)
        publications.append((topic, json.buffer))
    }

    private mutating func report(_ device: DeviceRecord) {
        let resource = "\(device.namespace)/devicestatus/\(device.name)"
        let body = DeviceReport(device: device.id, state: device.state, lastOnline: device.lastOnline.isEmpty ? nil : device.lastOnline,
                                twin: device.twin.filter { $0.value.actual != nil })
        var json = TwinJSON()
        body.write(to: &json)
        if configuration.coalesceReports, let index = reports.firstIndex(where: { $0.resource == resource }) {
            reports[index].content = json.buffer
        } else {
            reports.append((resource, json.buffer))
        }
    }

    // MARK: helpers

    /// The MQTT topic EventBus put base64-encoded (URL alphabet) in the resource.
    static func topic(fromResource resource: String) -> String? {
        Base64URL.decode(resource)
    }

    /// The `event_id` of a payload, if it has one, without decoding the rest.
    static func eventID(in payload: some Collection<UInt8>) -> String {
        (try? JSONDecoder().decode(EventIDProbe.self, from: Data(payload)))?.eventID ?? ""
    }

    static func members(_ devices: some Sequence<DeviceRecord>) -> [MemberDevice] {
        devices.map { MemberDevice(id: $0.id, name: $0.name, state: $0.state) }.sorted { $0.id < $1.id }
    }

    static func rfc3339(_ milliseconds: Int64) -> String {
        Date(timeIntervalSince1970: Double(milliseconds) / 1000).formatted(.iso8601)
    }

    static func describe(_ error: any Error) -> String {
        switch error {
        case DecodingError.dataCorrupted(let context): context.debugDescription
        case DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context):
            "\(context.codingPath.map(\.stringValue).joined(separator: ".")): \(context.debugDescription)"
        case DecodingError.keyNotFound(let key, _): "missing \"\(key.stringValue)\""
        default: "\(error)"
        }
    }
}

/// The parts of a `devices.kubeedge.io/v1beta1` Device DeviceTwin uses.
struct CloudDevice: Decodable {
    var spec: Spec?

    struct Spec: Decodable {
        var deviceModelRef: Reference?
        var `protocol`: ProtocolConfig?
        var properties: [Property]?
    }

    struct Reference: Decodable { var name: String? }
    struct ProtocolConfig: Decodable { var protocolName: String? }

    struct Property: Decodable {
        var name: String
        var desired: Desired?
    }

    struct Desired: Decodable {
        var value: String?
        var metadata: [String: String]?
    }
}

/// Just the `event_id` of a payload.
private struct EventIDProbe: Decodable {
    var eventID: String?
    enum CodingKeys: String, CodingKey { case eventID = "event_id" }
}
