@_exported import TestSupport
import NIOCore
@testable import Transport

/// Answers every message on `cloud`'s events lane with a reliable response whose content is
/// "echo:" followed by the original content (what the independent Python peers expect).
func echoEvents(of cloud: MessageChannel) -> Task<Void, any Error> {
    Task {
        for await message in cloud.messages(on: .events) {
            var content = ByteBuffer(string: "echo:")
            var original = message.content
            content.writeBuffer(&original)
            try await cloud.send(message.makeResponse(content: content), on: .events, delivery: .reliable)
        }
    }
}
