import Foundation
import Yams

/// A daemon's YAML configuration file read over its defaults: the file need only say what
/// differs, and a key the defaults do not have is an error (a misspelt key would otherwise be
/// silently ignored).
public protocol StrictYAMLConfig: Codable {
    /// The configuration with every default.
    init()
    /// Throws when the settings cannot be honoured together.
    func validate() throws
    /// The error that names the file, for `message`.
    static func error(_ message: String) -> any Error
    /// Dotted paths of mappings whose keys are the user's (labels), not settings: not checked
    /// against the defaults, and replaced rather than merged.
    static var freeFormMappings: Set<String> { get }
}

extension StrictYAMLConfig {
    public static var freeFormMappings: Set<String> { [] }
}

extension StrictYAMLConfig {
    /// The full default configuration as YAML (`--defaultconfig`).
    public static func defaultYAML() throws -> String {
        try YAMLEncoder().encode(Self())
    }

    /// Reads `yaml`: what it says over the defaults. Throws naming the first unknown key, a
    /// value of the wrong type, or what ``validate()`` refuses.
    public static func parse(_ yaml: String) throws -> Self {
        let defaults = try Yams.load(yaml: defaultYAML()) as? [String: Any] ?? [:]
        let loaded: Any?
        do {
            loaded = try Yams.load(yaml: yaml)
        } catch {
            throw Self.error("not YAML: \(error)")
        }
        guard let given = loaded as? [String: Any] ?? (loaded == nil ? [:] : nil) else {
            throw Self.error("the configuration must be a YAML mapping")
        }
        try checkKeys(given, against: defaults, path: "")
        let merged = merge(given, into: defaults)
        let config: Self
        do {
            config = try YAMLDecoder().decode(Self.self, from: try Yams.dump(object: merged))
        } catch let DecodingError.typeMismatch(_, context) {
            throw Self.error("\(context.codingPath.map(\.stringValue).joined(separator: ".")): \(context.debugDescription)")
        } catch {
            throw Self.error("\(error)")
        }
        try config.validate()
        return config
    }

    /// Reads the file at `path`; a missing file says how to write one.
    public static func load(path: String, program: String) throws -> Self {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw Self.error("cannot read \(path): \(error.localizedDescription). `\(program) --defaultconfig > \(path)` writes one to start from.")
        }
        return try parse(text)
    }

    private static func checkKeys(_ given: [String: Any], against known: [String: Any], path: String) throws {
        for (key, value) in given {
            let here = path.isEmpty ? key : "\(path).\(key)"
            guard let reference = known[key] else { throw Self.error("unknown key \(here)") }
            if freeFormMappings.contains(here) {
                guard value is [String: Any] else { throw Self.error("\(here) is not a mapping") }
                continue
            }
            if let nested = value as? [String: Any] {
                guard let knownNested = reference as? [String: Any] else { throw Self.error("\(here) is not a mapping") }
                try checkKeys(nested, against: knownNested, path: here)
            }
        }
    }

    private static func merge(_ given: [String: Any], into defaults: [String: Any]) -> [String: Any] {
        var result = defaults
        for (key, value) in given {
            if let nested = value as? [String: Any], let base = defaults[key] as? [String: Any] {
                result[key] = merge(nested, into: base)
            } else {
                result[key] = value
            }
        }
        return result
    }
}

/// `host:port` (after `scheme://` when given), as configuration files write addresses; IPv6
/// hosts in brackets. Throws a message naming `key`.
public func parseHostPort(_ text: String, scheme: String? = nil, key: String) throws -> (host: String, port: Int) {
    var rest = Substring(text)
    if let scheme {
        guard rest.hasPrefix("\(scheme)://") else { throw HostPortError(description: "\(key): expected \(scheme)://host:port, not \(text)") }
        rest = rest.dropFirst(scheme.count + 3)
    }
    guard let colon = rest.lastIndex(of: ":"), let port = Int(rest[rest.index(after: colon)...]), (0...65_535).contains(port),
          colon > rest.startIndex
    else {
        throw HostPortError(description: "\(key): expected host:port, not \(text)")
    }
    let host = rest[..<colon].trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
    return (host, port)
}

/// An address setting that is not `host:port`.
public struct HostPortError: Error, CustomStringConvertible {
    public var description: String
}
