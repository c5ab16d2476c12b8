extension KubeProtoSchema {
    /// The members of `object` (a `kind` of `group`/`version`) that its schema does not have, at
    /// every depth, as kube-apiserver's strict decoding names them (`spec.containers[0].imagePullPolice`);
    /// `nil` when the kind has no published schema. `apiVersion` and `kind` belong at the top;
    /// the insides of embedded objects (`RawExtension`) and Go's free-form types are not looked into.
    public func unknownFields(in object: JSONValue, group: String, version: String, kind: String) -> [String]? {
        guard let name = messageName(group: group, version: version, kind: kind), let message = message(named: name) else { return nil }
        var unknown: [String] = []
        walk(object, message, path: "", top: true, into: &unknown)
        return unknown
    }

    private func walk(_ value: JSONValue, _ message: Message, path: String, top: Bool = false, into unknown: inout [String]) {
        switch message.special {
        case .none:
            guard case .object(let members) = value else { return }
            for (key, member) in members {
                if top, key == "apiVersion" || key == "kind" { continue }
                let child = path.isEmpty ? key : path + "." + key
                guard let field = field(named: key, in: message) else {
                    unknown.append(child)
                    continue
                }
                walk(member, field, path: child, into: &unknown)
            }
        case .list:
            guard let items = message.fields.first, case .array(let values) = value else { return }
            for (index, item) in values.enumerated() { walkValue(item, items.type, path: "\(path)[\(index)]", into: &unknown) }
        default:
            return
        }
    }

    private func walk(_ value: JSONValue, _ field: Field, path: String, into unknown: inout [String]) {
        if field.repeated, case .array(let items) = value {
            for (index, item) in items.enumerated() { walkValue(item, field.type, path: "\(path)[\(index)]", into: &unknown) }
        } else {
            walkValue(value, field.type, path: path, into: &unknown)
        }
    }

    private func walkValue(_ value: JSONValue, _ type: FieldType, path: String, into unknown: inout [String]) {
        switch type {
        case .message(let index):
            walk(value, messageList[index], path: path, into: &unknown)
        case .map(_, let valueType):
            guard case .message = valueType, case .object(let entries) = value else { return }
            for (key, entry) in entries { walkValue(entry, valueType, path: "\(path)[\(key)]", into: &unknown) }
        default:
            return
        }
    }

    /// The field `name` of `message`, or of one of its inline embedded structs.
    private func field(named name: String, in message: Message) -> Field? {
        if let index = message.fieldIndexByName[name], !message.fields[index].inline { return message.fields[index] }
        for index in message.inlineFields {
            guard case .message(let inner) = message.fields[index].type, let found = field(named: name, in: messageList[inner]) else { continue }
            return found
        }
        return nil
    }
}
