import KubeModel

/// Who a request comes from, as authentication found them: a name, groups and the
/// Kubernetes-wide groups every authenticated user has.
public struct UserInfo: Sendable, Equatable {
    public var name: String
    public var uid: String
    public var groups: [String]

    /// A user with exactly these groups (an access review's subject).
    public init(name: String, uid: String = "", groups: [String] = []) {
        self.name = name
        self.uid = uid
        self.groups = groups
    }

    /// A user authentication proved: `groups` and `system:authenticated`.
    public static func authenticated(_ name: String, uid: String = "", groups: [String] = []) -> UserInfo {
        UserInfo(name: name, uid: uid, groups: groups.contains(authenticated) ? groups : groups + [authenticated])
    }

    /// The group of every authenticated user.
    public static let authenticated = "system:authenticated"
    /// The group whose members may do everything (bound to `cluster-admin`).
    public static let masters = "system:masters"

    /// The `authentication.k8s.io/v1` UserInfo of reviews (`username`, `uid`, `groups`).
    var reviewJSON: JSONValue {
        .object(JSONObject([("username", .string(name)), ("uid", .string(uid)), ("groups", .array(groups.map { .string($0) }))]))
    }
}
