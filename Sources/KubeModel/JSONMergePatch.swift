extension JSONValue {
    /// This value with `patch` applied as a JSON merge patch (RFC 7386): objects merge member by
    /// member, `null` removes a member, anything else replaces the target. What `kubectl patch
    /// --type merge` sends, and the base of strategic merge patch.
    public func applyingMergePatch(_ patch: JSONValue) -> JSONValue {
        guard case .object(let patchMembers) = patch else { return patch }
        var result = objectValue ?? JSONObject()
        for (key, value) in patchMembers {
            if value == .null {
                result[key] = nil
            } else {
                result[key] = (result[key] ?? .null).applyingMergePatch(value)
            }
        }
        return .object(result)
    }
}
