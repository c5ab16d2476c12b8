/// KubeEdge's device and node MQTT topics, parsed and built. A device is named by `{name}` or,
/// since KubeEdge 1.17, `{namespace}/{name}`; both are accepted.
public enum TwinTopic: Equatable, Sendable {
    /// `$hw/events/device/{id}/twin/update`: a device reports values, or an app sets expected ones.
    case twinUpdate(device: String)
    /// `$hw/events/device/{id}/twin/get`.
    case twinGet(device: String)
    /// `$hw/events/device/{id}/state/update`: online/offline.
    case stateUpdate(device: String)
    /// `$hw/events/node/{node}/membership/get`.
    case membershipGet(node: String)

    static let devicePrefix = "$hw/events/device/"
    static let nodePrefix = "$hw/events/node/"

    /// Parses a topic DeviceTwin answers; `nil` for any other (including results it publishes).
    public init?(_ topic: String) {
        if topic.hasPrefix(Self.devicePrefix) {
            let rest = topic.dropFirst(Self.devicePrefix.count)
            for (suffix, make) in [("/twin/update", Self.twinUpdate), ("/twin/get", Self.twinGet), ("/state/update", Self.stateUpdate)] {
                guard rest.hasSuffix(suffix) else { continue }
                let device = rest.dropLast(suffix.count)
                guard Self.isDeviceID(device) else { return nil }
                self = make(String(device))
                return
            }
            return nil
        }
        if topic.hasPrefix(Self.nodePrefix), topic.hasSuffix("/membership/get") {
            let node = topic.dropFirst(Self.nodePrefix.count).dropLast("/membership/get".count)
            guard !node.isEmpty, !node.contains("/") else { return nil }
            self = .membershipGet(node: String(node))
            return
        }
        return nil
    }

    /// One or two non-empty segments without MQTT wildcards.
    private static func isDeviceID(_ id: Substring) -> Bool {
        let parts = id.split(separator: "/", omittingEmptySubsequences: false)
        return (parts.count == 1 || parts.count == 2) && parts.allSatisfy { !$0.isEmpty && !$0.contains("+") && !$0.contains("#") }
    }

    /// `$hw/events/device/{id}/{suffix}` for a topic DeviceTwin publishes (`twin/update/delta`, …).
    public static func device(_ id: String, _ suffix: String) -> String { "\(devicePrefix)\(id)/\(suffix)" }

    /// `$hw/events/node/{node}/membership/{suffix}`.
    public static func membership(_ node: String, _ suffix: String) -> String { "\(nodePrefix)\(node)/membership/\(suffix)" }
}
