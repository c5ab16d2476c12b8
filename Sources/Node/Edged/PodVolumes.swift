import Foundation
import KubeModel

/// A pod's volumes on the host, under `{podsRoot}/{uid}/volumes/{name}`, as kubelet lays them
/// out: `configMap` and `secret` volumes hold one file per key (or per `items` entry) with
/// `defaultMode` or the item's `mode`, written atomically (a new `..{time}` directory, then the
/// `..data` link swapped to it), so a container never reads half an update; `emptyDir` is a
/// directory of the pod's own; `hostPath` is the host path itself, checked or created by its
/// `type`; `downwardAPI` holds pod fields, and `projected` the files of its ConfigMap, Secret,
/// downward API and service-account token sources together (tokens from a
/// ``ServiceAccountTokenManager``). ``sync(_:source:)`` rewrites a volume only when its source changed.
struct PodVolumes {
    /// `{podsRoot}/{uid}/volumes`.
    let directory: String
    /// Where `serviceAccountToken` projections get their tokens; without it they fail.
    let tokens: ServiceAccountTokenManager?

    init(podsRoot: String, uid: String, tokens: ServiceAccountTokenManager? = nil) {
        directory = podsRoot + "/" + uid + "/volumes"
        self.tokens = tokens
    }

    /// Every volume's host path, or why it is not there; each volume is materialised (or
    /// refreshed) first. A container fails only for the volumes it mounts.
    func sync(_ pod: Kube.Pod, source: (any PodResourceSource)?) async -> [String: Result<String, ContainerRuntimeError>] {
        var paths: [String: Result<String, ContainerRuntimeError>] = [:]
        let namespace = pod.namespace.isEmpty ? "default" : pod.namespace
        for volume in pod.json[path: ["spec", "volumes"]].elements {
            guard let name = volume["name"]?.stringValue, !name.isEmpty else { continue }
            do throws(ContainerRuntimeError) {
                paths[name] = .success(try await materialise(volume, name: name, pod: pod, namespace: namespace, source: source))
            } catch {
                paths[name] = .failure(error)
            }
        }
        return paths
    }

    /// Removes every volume of the pod (hostPath volumes are the host's and stay).
    func remove() {
        try? FileManager.default.removeItem(atPath: URL(fileURLWithPath: directory).deletingLastPathComponent().path)
    }

    /// The mounts of `container`: each `volumeMounts` entry's volume (and `subPath` in it) at
    /// its `mountPath`. ConfigMap and Secret volumes are always read-only, as kubelet mounts them.
    static func mounts(for container: Kube.Container, pod: Kube.Pod, volumes: [String: Result<String, ContainerRuntimeError>]) throws(ContainerRuntimeError) -> [ContainerMount] {
        let kinds = Dictionary(pod.json[path: ["spec", "volumes"]].elements.compactMap { volume in
            volume["name"]?.stringValue.map { ($0, kind(of: volume)) }
        }, uniquingKeysWith: { first, _ in first })
        var mounts: [ContainerMount] = []
        for mount in container.json["volumeMounts"].elements {
            let name = mount["name"]?.stringValue ?? ""
            guard let mountPath = mount["mountPath"]?.stringValue, mountPath.hasPrefix("/") else {
                throw failure("volumeMount \"\(name)\" needs an absolute mountPath")
            }
            guard let result = volumes[name] else { throw failure("volumeMount \"\(name)\" refers to no volume of the pod") }
            var source = try result.get()
            if let subPath = mount["subPath"]?.stringValue, !subPath.isEmpty {
                guard isSafeRelativePath(subPath) else { throw failure("volumeMount \"\(name)\": subPath \(subPath) must be a relative path inside the volume") }
                source += "/" + subPath
                if !FileManager.default.fileExists(atPath: source) {
                    try? FileManager.default.createDirectory(atPath: source, withIntermediateDirectories: true)
                }
            }
            let alwaysReadOnly = ["configMap", "secret", "downwardAPI", "projected"].contains(kinds[name] ?? "")
            mounts.append(ContainerMount(source: source, destination: mountPath, readOnly: alwaysReadOnly || mount["readOnly"] == .bool(true)))
        }
        return mounts
    }

    /// The volume source kind named in `volume` (`configMap`, `secret`, …), or `nil`.
    static func kind(of volume: JSONValue) -> String? {
        guard let object = volume.objectValue else { return nil }
        for (key, _) in object where key != "name" { return key }
        return nil
    }

    // MARK: materialising

    private func materialise(_ volume: JSONValue, name: String, pod: Kube.Pod, namespace: String,
                             source: (any PodResourceSource)?) async throws(ContainerRuntimeError) -> String {
        guard Self.isSafeRelativePath(name), !name.contains("/") else { throw Self.failure("volume name \(name) is not a file name") }
        let path = directory + "/" + name
        switch Self.kind(of: volume) {
        case "configMap":
            let reference = volume["configMap"]
            let mapName = reference?["name"]?.stringValue ?? ""
            guard let map = await source?.configMap(namespace: namespace, name: mapName) else {
                if reference?["optional"] == .bool(true) { return try write([:], to: path) }
                throw Self.failure("volume \"\(name)\": configmap \"\(mapName)\" not found")
            }
            var data = map.data.mapValues { Array($0.utf8) }
            data.merge(map.binaryData) { text, _ in text }
            return try write(Self.files(data, spec: reference, volume: name, optional: reference?["optional"] == .bool(true)), to: path)
        case "secret":
            let reference = volume["secret"]
            let secretName = reference?["secretName"]?.stringValue ?? ""
            guard let secret = await source?.secret(namespace: namespace, name: secretName) else {
                if reference?["optional"] == .bool(true) { return try write([:], to: path) }
                throw Self.failure("volume \"\(name)\": secret \"\(secretName)\" not found")
            }
            return try write(Self.files(secret.data, spec: reference, volume: name, optional: reference?["optional"] == .bool(true)), to: path)
        case "emptyDir":
            do {
                if !FileManager.default.fileExists(atPath: path) {
                    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
                    chmod(path, 0o777)
                }
            } catch {
                throw Self.failure("volume \"\(name)\": cannot create the emptyDir: \(error.localizedDescription)")
            }
            return path
        case "hostPath":
            return try Self.hostPath(volume["hostPath"], volume: name)
        case "downwardAPI":
            let spec = volume["downwardAPI"]
            return try write(try Self.downwardFiles(spec?["items"].elements ?? [], defaultMode: try Self.defaultMode(spec, volume: name), pod: pod,
                                                    namespace: namespace, volume: name), to: path)
        case "projected":
            return try write(try await projectedFiles(volume["projected"], pod: pod, namespace: namespace, volume: name, source: source), to: path)
        case let kind?:
            throw Self.failure("volume \"\(name)\": \(kind) volumes are not supported by Edged (configMap, secret, emptyDir, hostPath, downwardAPI and projected are)")
        case nil:
            throw Self.failure("volume \"\(name)\" names no volume source")
        }
    }

    private static func defaultMode(_ spec: JSONValue?, volume: String) throws(ContainerRuntimeError) -> Int {
        let mode = spec?["defaultMode"]?.int64Value.map(Int.init) ?? 0o644
        guard (0...0o777).contains(mode) else { throw failure("volume \"\(volume)\": defaultMode \(mode) is not between 0 and 0777") }
        return mode
    }

    /// A downward API volume's (or projection's) files: each item's pod field, with its mode.
    private static func downwardFiles(_ items: [JSONValue], defaultMode: Int, pod: Kube.Pod, namespace: String,
                                      volume: String) throws(ContainerRuntimeError) -> [String: (bytes: [UInt8], mode: Int)] {
        var files: [String: (bytes: [UInt8], mode: Int)] = [:]
        for item in items {
            let path = item["path"]?.stringValue ?? ""
            guard isSafeRelativePath(path), !path.hasPrefix("..") else { throw failure("volume \"\(volume)\": item path \(path) must be a relative path inside the volume") }
            guard let field = item[path: ["fieldRef", "fieldPath"]]?.stringValue else {
                throw failure("volume \"\(volume)\": item \(path) needs a fieldRef (resourceFieldRef is not supported)")
            }
            let mode = item["mode"]?.int64Value.map(Int.init) ?? defaultMode
            files[path] = (Array(try ContainerEnvironment.fieldValue(field, pod: pod, namespace: namespace, wholeMaps: true).utf8), mode)
        }
        return files
    }

    /// A projected volume's files: its ConfigMap, Secret and downward API sources merged,
    /// with the volume's `defaultMode`.
    private func projectedFiles(_ spec: JSONValue?, pod: Kube.Pod, namespace: String, volume: String,
                                source: (any PodResourceSource)?) async throws(ContainerRuntimeError) -> [String: (bytes: [UInt8], mode: Int)] {
        let mode = try Self.defaultMode(spec, volume: volume)
        var files: [String: (bytes: [UInt8], mode: Int)] = [:]
        for projection in spec?["sources"].elements ?? [] {
            var reference = projection["configMap"] ?? projection["secret"]
            reference?["defaultMode"] = .integer(mode)
            let optional = reference?["optional"] == .bool(true)
            if let map = projection["configMap"] {
                let mapName = map["name"]?.stringValue ?? ""
                guard let found = await source?.configMap(namespace: namespace, name: mapName) else {
                    if optional { continue }
                    throw Self.failure("volume \"\(volume)\": configmap \"\(mapName)\" not found")
                }
                var data = found.data.mapValues { Array($0.utf8) }
                data.merge(found.binaryData) { text, _ in text }
                files.merge(try Self.files(data, spec: reference, volume: volume, optional: optional)) { _, later in later }
            } else if let secretSpec = projection["secret"] {
                let secretName = secretSpec["name"]?.stringValue ?? ""
                guard let found = await source?.secret(namespace: namespace, name: secretName) else {
                    if optional { continue }
                    throw Self.failure("volume \"\(volume)\": secret \"\(secretName)\" not found")
                }
                files.merge(try Self.files(found.data, spec: reference, volume: volume, optional: optional)) { _, later in later }
            } else if let downward = projection["downwardAPI"] {
                files.merge(try Self.downwardFiles(downward["items"].elements, defaultMode: mode, pod: pod, namespace: namespace, volume: volume)) { _, later in later }
            } else if let tokenSpec = projection["serviceAccountToken"] {
                let path = tokenSpec["path"]?.stringValue ?? ""
                guard Self.isSafeRelativePath(path), !path.hasPrefix("..") else {
                    throw Self.failure("volume \"\(volume)\": token path \(path) must be a relative path inside the volume")
                }
                files[path] = (Array(try serviceAccountToken(tokenSpec, pod: pod, namespace: namespace, volume: volume, file: path).utf8), mode)
            } else {
                throw Self.failure("volume \"\(volume)\": a projected source names no configMap, secret or downwardAPI")
            }
        }
        return files
    }

    /// A `serviceAccountToken` projection's token for the pod's service account, from the
    /// token manager (which falls back on the token already in the volume, until it expires).
    private func serviceAccountToken(_ spec: JSONValue, pod: Kube.Pod, namespace: String, volume: String,
                                     file: String) throws(ContainerRuntimeError) -> String {
        guard let tokens else { throw Self.failure("volume \"\(volume)\": this Edged requests no service-account tokens") }
        let expiration = spec["expirationSeconds"]?.int64Value ?? 3600
        guard expiration >= 600 else { throw Self.failure("volume \"\(volume)\": expirationSeconds \(expiration) is less than 10 minutes") }
        guard let uid = pod.uid, !uid.isEmpty else { throw Self.failure("volume \"\(volume)\": the pod has no uid to bind its token to") }
        let request = ServiceAccountTokenManager.Request(
            namespace: namespace, account: ServiceAccountTokenManager.accountName(of: pod), audience: spec["audience"]?.stringValue ?? "",
            expirationSeconds: expiration, podName: pod.name, podUID: uid)
        let stored = directory + "/" + volume + "/" + file
        return try tokens.token(for: request, now: Date()) { try? String(contentsOfFile: stored, encoding: .utf8) }.get()
    }

    /// The files of a ConfigMap or Secret volume: every key, or the `items` asked for, each
    /// with its mode.
    private static func files(_ data: [String: [UInt8]], spec: JSONValue?, volume: String, optional: Bool) throws(ContainerRuntimeError) -> [String: (bytes: [UInt8], mode: Int)] {
        let defaultMode = try defaultMode(spec, volume: volume)
        var files: [String: (bytes: [UInt8], mode: Int)] = [:]
        let items = spec?["items"].elements ?? []
        if items.isEmpty {
            for (key, bytes) in data where !key.hasPrefix("..") && isSafeRelativePath(key) { files[key] = (bytes, defaultMode) }
            return files
        }
        for item in items {
            let key = item["key"]?.stringValue ?? ""
            let path = item["path"]?.stringValue ?? ""
            guard isSafeRelativePath(path), !path.hasPrefix("..") else { throw failure("volume \"\(volume)\": item path \(path) must be a relative path inside the volume") }
            let mode = item["mode"]?.int64Value.map(Int.init) ?? defaultMode
            guard (0...0o777).contains(mode) else { throw failure("volume \"\(volume)\": mode \(mode) of \(path) is not between 0 and 0777") }
            guard let bytes = data[key] else {
                if optional { continue }
                throw failure("volume \"\(volume)\": no key \(key) in its source")
            }
            files[path] = (bytes, mode)
        }
        return files
    }

    private static func hostPath(_ spec: JSONValue?, volume: String) throws(ContainerRuntimeError) -> String {
        guard let path = spec?["path"]?.stringValue, path.hasPrefix("/") else { throw failure("volume \"\(volume)\": hostPath needs an absolute path") }
        let type = spec?["type"]?.stringValue ?? ""
        var isDirectory: ObjCBool = false
        let exists = FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory)
        func check(_ holds: Bool, _ what: String) throws(ContainerRuntimeError) {
            if !holds { throw failure("volume \"\(volume)\": hostPath type check failed: \(path) is not \(what)") }
        }
        switch type {
        case "":
            break
        case "DirectoryOrCreate":
            if !exists {
                do { try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755]) } catch {
                    throw failure("volume \"\(volume)\": cannot create \(path): \(error.localizedDescription)")
                }
            } else { try check(isDirectory.boolValue, "a directory") }
        case "Directory":
            try check(exists && isDirectory.boolValue, "a directory")
        case "FileOrCreate":
            if !exists {
                guard FileManager.default.createFile(atPath: path, contents: nil, attributes: [.posixPermissions: 0o644]) else {
                    throw failure("volume \"\(volume)\": cannot create \(path)")
                }
            } else { try check(!isDirectory.boolValue, "a file") }
        case "File":
            try check(exists && !isDirectory.boolValue, "a file")
        case "Socket", "CharDevice", "BlockDevice":
            var info = stat()
            let format = stat(path, &info) == 0 ? info.st_mode & S_IFMT : 0
            let wanted: mode_t = type == "Socket" ? S_IFSOCK : type == "CharDevice" ? S_IFCHR : S_IFBLK
            try check(format == wanted, type == "Socket" ? "a socket" : type == "CharDevice" ? "a character device" : "a block device")
        default:
            throw failure("volume \"\(volume)\": hostPath type \(type) is not one Kubernetes defines")
        }
        return path
    }

    /// Writes `files` into `path` atomically unless they are there already.
    private func write(_ files: [String: (bytes: [UInt8], mode: Int)], to path: String) throws(ContainerRuntimeError) -> String {
        do {
            try AtomicDirectory.update(path, with: files)
        } catch {
            throw Self.failure("cannot write the volume at \(path): \(error)")
        }
        return path
    }

    /// Relative, and never climbing out with `..`.
    static func isSafeRelativePath(_ path: String) -> Bool {
        !path.isEmpty && !path.hasPrefix("/") && !path.split(separator: "/").contains("..")
    }

    private static func failure(_ message: String) -> ContainerRuntimeError {
        ContainerRuntimeError(reason: "CreateContainerConfigError", message: message)
    }
}
