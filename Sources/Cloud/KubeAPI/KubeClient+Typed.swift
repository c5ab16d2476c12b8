import KubeModel

/// A watch event carrying a typed object (`BOOKMARK` events carry only a resourceVersion).
public struct TypedWatchEvent<Object: KubeObject>: Sendable {
    public var type: String
    public var object: Object
}

/// Typed access: the same calls as the untyped ones, taking and returning ``KubeObject``s
/// (`Kube.Pod`, `Kube.Node`, `Kube.Device`, …), so fields this code does not name still
/// survive a read-modify-write.
extension KubeClient {
    public func get<Object: KubeObject>(_ type: Object.Type, namespace: String? = nil, name: String) async throws -> Object {
        Object(json: try await get(APIResource(type), namespace: namespace, name: name))
    }

    public func list<Object: KubeObject>(_ type: Object.Type, namespace: String? = nil, labelSelector: String? = nil, fieldSelector: String? = nil)
        async throws -> (items: [Object], resourceVersion: String) {
        let list = try await list(APIResource(type), namespace: namespace, labelSelector: labelSelector, fieldSelector: fieldSelector)
        return (list.items.map(Object.init(json:)), list.resourceVersion)
    }

    /// Creates the object in its own namespace.
    public func create<Object: KubeObject>(_ object: Object) async throws -> Object {
        Object(json: try await create(APIResource(Object.self), namespace: Self.namespace(of: object), object.json))
    }

    /// Replaces the object; conditional on its resourceVersion when it has one.
    public func update<Object: KubeObject>(_ object: Object) async throws -> Object {
        Object(json: try await update(APIResource(Object.self), namespace: Self.namespace(of: object), object.json))
    }

    /// Replaces the object's status only.
    public func updateStatus<Object: KubeObject>(_ object: Object) async throws -> Object {
        Object(json: try await updateStatus(APIResource(Object.self), namespace: Self.namespace(of: object), object.json))
    }

    public func patch<Object: KubeObject>(_ type: Object.Type, namespace: String? = nil, name: String, _ patch: JSONValue,
                                          type patchType: PatchType = .merge, status: Bool = false) async throws -> Object {
        Object(json: try await self.patch(APIResource(type), namespace: namespace, name: name, patch, type: patchType, status: status))
    }

    public func delete<Object: KubeObject>(_ type: Object.Type, namespace: String? = nil, name: String) async throws {
        try await delete(APIResource(type), namespace: namespace, name: name)
    }

    /// ``KubeClient/watch(_:namespace:resourceVersion:labelSelector:fieldSelector:timeoutSeconds:onEvent:)`` with typed objects.
    public func watch<Object: KubeObject>(_ type: Object.Type, namespace: String? = nil, resourceVersion: String, labelSelector: String? = nil,
                                          fieldSelector: String? = nil, timeoutSeconds: Int = 300,
                                          onEvent: (TypedWatchEvent<Object>) throws -> Void) async throws {
        try await watch(APIResource(type), namespace: namespace, resourceVersion: resourceVersion, labelSelector: labelSelector,
                        fieldSelector: fieldSelector, timeoutSeconds: timeoutSeconds) { event in
            try onEvent(TypedWatchEvent(type: event.type, object: Object(json: event.object)))
        }
    }

    private static func namespace<Object: KubeObject>(of object: Object) -> String? {
        guard Object.namespaced else { return nil }
        return object.namespace.isEmpty ? "default" : object.namespace
    }
}
