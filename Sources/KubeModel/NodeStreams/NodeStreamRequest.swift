/// What the cloud asks of a node's Edged on a byte stream (the stream's open header, as JSON):
/// a container's log, an exec or attach session, a port forward, or resource statistics. It
/// carries what kubelet's streaming endpoints take in their URLs.
public struct NodeStreamRequest: Sendable, Equatable {
    /// What the stream is for.
    public enum Kind: String, Sendable {
        case log, exec, attach, portForward = "portforward", stats
    }

    public var kind: Kind
    public var namespace: String
    public var pod: String
    /// The pod's UID when the cloud knows it: a pod of that name with another UID is not it.
    public var uid: String
    public var container: String
    /// `log`: the options of `pods/log`.
    public var log: LogOptions
    /// `exec`: the command; `exec` and `attach`: which streams the client uses, and a TTY.
    public var command: [String]
    public var stdin: Bool
    public var stdout: Bool
    public var stderr: Bool
    public var tty: Bool
    /// `portForward`: the pod's port this stream connects to.
    public var port: Int

    /// The options of `pods/log` (see kube's `PodLogOptions`).
    public struct LogOptions: Sendable, Equatable {
        public var follow = false
        public var previous = false
        public var timestamps = false
        public var tailLines: Int?
        public var sinceSeconds: Int?
        /// RFC 3339 time; lines before it are skipped.
        public var sinceTime: String?
        public var limitBytes: Int?

        public init() {}
    }

    public init(kind: Kind, namespace: String = "", pod: String = "", uid: String = "", container: String = "") {
        self.kind = kind
        self.namespace = namespace
        self.pod = pod
        self.uid = uid
        self.container = container
        log = LogOptions()
        command = []
        stdin = false
        stdout = false
        stderr = false
        tty = false
        port = 0
    }

    /// The request as the JSON of a stream's open header.
    public var json: JSONValue {
        var members: [(String, JSONValue)] = [
            ("kind", .string(kind.rawValue)), ("namespace", .string(namespace)), ("pod", .string(pod)), ("uid", .string(uid)),
            ("container", .string(container)),
        ]
        switch kind {
        case .log:
            var options: [(String, JSONValue)] = [("follow", .bool(log.follow)), ("previous", .bool(log.previous)), ("timestamps", .bool(log.timestamps))]
            if let tailLines = log.tailLines { options.append(("tailLines", .integer(tailLines))) }
            if let sinceSeconds = log.sinceSeconds { options.append(("sinceSeconds", .integer(sinceSeconds))) }
            if let sinceTime = log.sinceTime { options.append(("sinceTime", .string(sinceTime))) }
            if let limitBytes = log.limitBytes { options.append(("limitBytes", .integer(limitBytes))) }
            members.append(("log", .object(JSONObject(options))))
        case .exec, .attach:
            if kind == .exec { members.append(("command", .array(command.map { .string($0) }))) }
            members += [("stdin", .bool(stdin)), ("stdout", .bool(stdout)), ("stderr", .bool(stderr)), ("tty", .bool(tty))]
        case .portForward:
            members.append(("port", .integer(port)))
        case .stats:
            break
        }
        return .object(JSONObject(members))
    }

    /// Reads a request from a stream's open header; `nil` when it is not one.
    public init?(json bytes: some Collection<UInt8>) {
        guard let value = try? JSONValue(parsing: bytes), let kindName = value["kind"]?.stringValue, let kind = Kind(rawValue: kindName) else {
            return nil
        }
        self.init(kind: kind, namespace: value["namespace"]?.stringValue ?? "", pod: value["pod"]?.stringValue ?? "",
                  uid: value["uid"]?.stringValue ?? "", container: value["container"]?.stringValue ?? "")
        if let options = value["log"] {
            log.follow = options["follow"]?.boolValue ?? false
            log.previous = options["previous"]?.boolValue ?? false
            log.timestamps = options["timestamps"]?.boolValue ?? false
            log.tailLines = options["tailLines"]?.int64Value.map { Int(clamping: $0) }
            log.sinceSeconds = options["sinceSeconds"]?.int64Value.map { Int(clamping: $0) }
            log.sinceTime = options["sinceTime"]?.stringValue
            log.limitBytes = options["limitBytes"]?.int64Value.map { Int(clamping: $0) }
        }
        command = value["command"]?.arrayValue?.compactMap(\.stringValue) ?? []
        stdin = value["stdin"]?.boolValue ?? false
        stdout = value["stdout"]?.boolValue ?? false
        stderr = value["stderr"]?.boolValue ?? false
        tty = value["tty"]?.boolValue ?? false
        port = value["port"]?.int64Value.map { Int(clamping: $0) } ?? 0
    }
}

/// The first bytes Edged writes on a request's stream: whether it serves it, as an HTTP status
/// with kube's reason and message. Framed as a 4-byte big-endian length and that much JSON
/// (`{"code":200}`, or `{"code":400,"reason":"BadRequest","message":"…"}`); the request's
/// payload follows a 200.
public struct NodeStreamReply: Sendable, Equatable {
    public var code: Int
    public var reason: String
    public var message: String

    public init(code: Int, reason: String = "", message: String = "") {
        self.code = code
        self.reason = reason
        self.message = message
    }

    public static let ok = NodeStreamReply(code: 200)

    /// The most bytes a reply's JSON may take.
    public static let maxLength = 16 * 1024

    /// The reply framed for the stream.
    public var framed: [UInt8] {
        var members: [(String, JSONValue)] = [("code", .integer(code))]
        if !reason.isEmpty { members.append(("reason", .string(reason))) }
        if !message.isEmpty { members.append(("message", .string(message))) }
        let json = JSONValue.object(JSONObject(members)).serializedBytes
        let length = UInt32(json.count)
        return [UInt8(length >> 24), UInt8(truncatingIfNeeded: length >> 16), UInt8(truncatingIfNeeded: length >> 8), UInt8(truncatingIfNeeded: length)] + json
    }

    /// Parses a reply's JSON (after its length).
    public init?(json bytes: some Collection<UInt8>) {
        guard let value = try? JSONValue(parsing: bytes), let code = value["code"]?.int64Value else { return nil }
        self.init(code: Int(code), reason: value["reason"]?.stringValue ?? "", message: value["message"]?.stringValue ?? "")
    }
}
