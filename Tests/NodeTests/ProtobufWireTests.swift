import Testing
import KubeModel
@testable import Node

/// The hand-written protocol buffer codec behind Edged's CRI client and Kubernetes protobuf.
@Suite struct ProtobufWireTests {
    @Test func fieldsRoundTripAndDefaultsAreLeftOut() throws {
        var writer = ProtobufWriter()
        writer.string(1, "pod")
        writer.int(2, 0)  // a default: not written
        writer.int(3, -1)
        writer.int(4, 300)
        writer.bool(5, true)
        writer.strings(6, ["a", "b"])
        writer.map(7, ["k": "v"])
        writer.message(8) { $0.string(1, "inner") }
        writer.message(9) { _ in }  // an empty message is still there
        #expect(writer.bytes.prefix(5) == [0x0A, 3, 0x70, 0x6F, 0x64])
        #expect(Array(writer.bytes[5..<16]) == [0x18, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01], "a negative int is ten bytes")

        var reader = ProtobufReader(writer.bytes)
        var seen: [Int] = []
        var strings: [String] = []
        while let (field, value) = try reader.next() {
            seen.append(field)
            switch field {
            case 1: #expect(value.string == "pod")
            case 3: #expect(value.int64 == -1 && value.int32 == -1)
            case 4: #expect(value.int64 == 300)
            case 5: #expect(value.int64 == 1)
            case 6: strings.append(value.string)
            case 7: #expect(try ProtobufReader.mapEntry(value) == ("k", "v"))
            case 8:
                var inner = value.message
                #expect(try inner.next()?.value.string == "inner")
            case 9: #expect(value.data.isEmpty)
            default: Issue.record("unexpected field \(field)")
            }
        }
        #expect(seen == [1, 3, 4, 5, 6, 6, 7, 8, 9])
        #expect(strings == ["a", "b"])
    }

    @Test func unknownFieldsAreSkippedAndBrokenMessagesAreErrors() throws {
        // Field 15 as fixed64 and field 14 as fixed32 (kinds Edged never reads), then field 1.
        var reader = ProtobufReader([0x79, 1, 2, 3, 4, 5, 6, 7, 8, 0x75, 1, 2, 3, 4, 0x0A, 1, 0x41])
        #expect(try reader.next()?.field == 15)
        #expect(try reader.next()?.field == 14)
        #expect(try reader.next()?.value.string == "A")
        #expect(try reader.next() == nil)

        for broken: [UInt8] in [[0x08, 0x80], [0x0A, 5, 0x41], [0x0B], [0x00, 0x01], [0x08] + [UInt8](repeating: 0xFF, count: 11)] {
            var reader = ProtobufReader(broken)
            #expect(throws: ProtobufDecodingError.self, "\(broken)") { while try reader.next() != nil {} }
        }
    }

    @Test func criStatesThatProto3LeavesOutAreTheZeroStates() throws {
        // A sandbox with no state field is SANDBOX_READY; a container without one is CONTAINER_CREATED.
        var sandbox = ProtobufWriter()
        sandbox.message(1) { $0.string(1, "sandbox-id") }
        #expect(try CRI.sandboxes(sandbox.bytes).first?.ready == true)
        var notReady = ProtobufWriter()
        notReady.message(1) { $0.int(3, 1) }
        #expect(try CRI.sandboxes(notReady.bytes).first?.ready == false)
        var container = ProtobufWriter()
        container.message(1) { $0.string(1, "container-id") }
        #expect(try CRI.containers(container.bytes).first?.state == .created)
        var exited = ProtobufWriter()
        exited.message(1) { status in
            status.int(3, 2)
            status.int(7, 137)
            status.string(10, "OOMKilled")
        }
        let status = try CRI.ContainerStatus(reply: exited.bytes)
        #expect(status.state == .exited && status.exitCode == 137 && status.reason == "OOMKilled")
    }
}
