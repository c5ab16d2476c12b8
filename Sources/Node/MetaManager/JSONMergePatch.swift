import Foundation

/// JSON merge patch (RFC 7386): objects merge key by key, `null` removes a key, anything else
/// replaces the target.
enum JSONMergePatch {
    /// `patch` applied to `target` (either may be absent), as JSON bytes.
    static func apply(_ patch: Data, to target: Data?) throws(MetaError) -> Data {
        do {
            let patchValue = try JSONSerialization.jsonObject(with: patch, options: [.fragmentsAllowed])
            let targetValue = try target.map { try JSONSerialization.jsonObject(with: $0, options: [.fragmentsAllowed]) }
            let merged = merge(patchValue, into: targetValue)
            return try JSONSerialization.data(withJSONObject: merged, options: [.fragmentsAllowed, .sortedKeys])
        } catch let error as MetaError {
            throw error
        } catch {
            throw MetaError.malformedObject("merge patch: \(error)")
        }
    }

    private static func merge(_ patch: Any, into target: Any?) -> Any {
        guard let patch = patch as? [String: Any] else { return patch }
        var result = target as? [String: Any] ?? [:]
        for (key, value) in patch {
            if value is NSNull {
                result.removeValue(forKey: key)
            } else {
                result[key] = merge(value, into: result[key])
            }
        }
        return result
    }
}
