import Foundation
import KubeModel

/// How a response is encoded.
enum APIEncoding: Sendable, Equatable {
    case json
    /// `application/vnd.kubernetes.protobuf` (built-in kinds only).
    case protobuf
}

/// Content negotiation as kube-apiserver does it: the `Accept` header's types in order of
/// their `q` (then of the header), the first this server can give; protobuf only for a kind that
/// has a protobuf form.
enum APIMediaType {
    static let protobuf = KubeProtobuf.contentType
    static let protobufWatch = KubeProtobuf.contentType + ";stream=watch"

    /// The encoding for `accept` (the header's values); `nil` when none of its types can be
    /// given (406).
    static func negotiate(accept: [String], protobufAvailable: Bool) -> APIEncoding? {
        var offered: [(type: String, quality: Double, order: Int)] = []
        for (order, entry) in accept.flatMap({ $0.split(separator: ",") }).enumerated() {
            let parts = entry.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces) }
            guard let type = parts.first?.lowercased(), !type.isEmpty else { continue }
            let quality = parts.dropFirst().first { $0.hasPrefix("q=") }.flatMap { Double($0.dropFirst(2)) } ?? 1
            guard quality > 0 else { continue }
            offered.append((type, quality, order))
        }
        guard !offered.isEmpty else { return .json }
        offered.sort { $0.quality != $1.quality ? $0.quality > $1.quality : $0.order < $1.order }
        for entry in offered {
            switch entry.type {
            case "application/json", "application/*", "*/*": return .json
            case protobuf where protobufAvailable: return .protobuf
            default: continue
            }
        }
        return nil
    }

    /// kube-apiserver's refusal when no acceptable type can be given.
    static func notAcceptable(protobufAvailable: Bool) -> APIError {
        let accepted = protobufAvailable ? ["application/json", protobuf] : ["application/json"]
        return APIError(code: 406, reason: "NotAcceptable", message: "only the following media types are accepted: \(accepted.joined(separator: ", "))")
    }

    /// Whether a request body of `contentType` is protobuf.
    static func isProtobuf(contentType: String) -> Bool {
        contentType.split(separator: ";").first?.trimmingCharacters(in: .whitespaces).lowercased() == protobuf
    }
}
