import KubeModel
import Yams

/// A YAML document (as `application/apply-patch+yaml` bodies are) as a ``JSONValue``, mapping
/// keys in their order, scalars by their resolved YAML 1.1 tags.
enum YAMLDocument {
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    static func parse(_ text: String) throws(Failure) -> JSONValue {
        let node: Yams.Node?
        do {
            node = try Yams.compose(yaml: text)
        } catch {
            throw Failure(description: "the body is neither JSON nor YAML: \(error)")
        }
        guard let node else { throw Failure(description: "the body is empty") }
        return try value(of: node)
    }

    private static func value(of node: Yams.Node) throws(Failure) -> JSONValue {
        switch node {
        case .mapping(let mapping):
            var object = JSONObject()
            for (key, child) in mapping {
                guard let name = key.string else { throw Failure(description: "a mapping key is not a string") }
                object[name] = try value(of: child)
            }
            return .object(object)
        case .sequence(let sequence):
            var elements: [JSONValue] = []
            for child in sequence { elements.append(try value(of: child)) }
            return .array(elements)
        case .scalar(let scalar):
            let tag = node.tag
            if tag == Tag(.null) { return .null }
            if tag == Tag(.bool), let flag = node.bool { return .bool(flag) }
            if tag == Tag(.int), let number = node.int { return .integer(number) }
            if tag == Tag(.float), let number = node.float, number.isFinite { return .number(String(number)) }
            return .string(scalar.string)
        case .alias:
            throw Failure(description: "YAML aliases are not supported")
        }
    }
}
