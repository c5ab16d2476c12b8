import NIOCore

/// A KubeEdge-style message: a ``MessageHeader``, a ``MessageRouter`` and opaque content.
///
/// The transport never parses, copies or re-encodes ``content``: on receipt it is a slice of the
/// buffer the bytes arrived in.
public struct Message: Sendable, Equatable {
    /// Identity, correlation and versioning.
    public var header: MessageHeader
    /// Source, destination, group, operation and resource.
    public var router: MessageRouter
    /// The payload: JSON of a Kubernetes object, a twin document, raw MQTT bytes, ...
    public var content: ByteBuffer

    /// Creates a message.
    public init(header: MessageHeader = MessageHeader(), router: MessageRouter, content: ByteBuffer = ByteBuffer()) {
        self.header = header
        self.router = router
        self.content = content
    }

    /// A response to this message: `parentID` set to this message's id, operation `response`,
    /// source and destination swapped.
    public func makeResponse(content: ByteBuffer, source: String? = nil) -> Message {
        Message(
            header: MessageHeader(parentID: header.id, resourceVersion: header.resourceVersion),
            router: MessageRouter(
                source: source ?? router.destination, destination: router.source, group: router.group,
                operation: MessageRouter.Operation.response, resource: router.resource),
            content: content)
    }
}
