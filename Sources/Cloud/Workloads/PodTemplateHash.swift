import KubeModel

/// The `pod-template-hash` of a Deployment's pod template: FNV-1a (32 bits) of the template
/// with its keys in a canonical order, then of `status.collisionCount` (little-endian) when set,
/// written in decimal and each digit mapped to kube's alphabet of safe characters, as kube's
/// deployment controller forms the suffix of a ReplicaSet's name. The same template always gives
/// the same hash; the exact value differs from kube's, which hashes Go's printing of the struct.
enum PodTemplateHash {
    private static let alphabet = Array("bcdfghjklmnpqrstvwxz2456789")

    static func of(_ template: JSONValue, collisionCount: Int64?) -> String {
        var hash: UInt32 = 2_166_136_261
        func mix<Bytes: Sequence>(_ bytes: Bytes) where Bytes.Element == UInt8 {
            for byte in bytes {
                hash ^= UInt32(byte)
                hash = hash &* 16_777_619
            }
        }
        mix(canonical(template).serializedBytes)
        if let collisionCount {
            let value = UInt32(truncatingIfNeeded: collisionCount)
            mix([UInt8(value & 0xff), UInt8((value >> 8) & 0xff), UInt8((value >> 16) & 0xff), UInt8(value >> 24)])
        }
        return String(String(hash).utf8.map { alphabet[Int($0) % alphabet.count] })
    }

    /// `value` with every object's keys sorted, so that equal content is equal text.
    static func canonical(_ value: JSONValue) -> JSONValue {
        switch value {
        case .object(let members):
            return .object(JSONObject(members.keys.sorted().map { ($0, canonical(members[$0] ?? .null)) }))
        case .array(let items):
            return .array(items.map(canonical))
        default:
            return value
        }
    }

    /// Whether two pod templates are the same apart from the `pod-template-hash` label (how the
    /// controller finds the ReplicaSet of a Deployment's current template).
    static func equalIgnoringHash(_ left: JSONValue, _ right: JSONValue) -> Bool {
        func stripped(_ template: JSONValue) -> JSONValue {
            var copy = template
            copy.set(nil, at: ["metadata", "labels", DeploymentAnnotations.podTemplateHash])
            if copy[path: ["metadata", "labels"]]?.objectValue?.isEmpty == true { copy.set(nil, at: ["metadata", "labels"]) }
            return canonical(copy)
        }
        return stripped(left) == stripped(right)
    }
}
