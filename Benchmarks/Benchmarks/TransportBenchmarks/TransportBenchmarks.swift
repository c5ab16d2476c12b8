import Benchmark
import NIOCore
import NIOPosix
import Transport

/// A typical KubeEdge-shaped message with a 256-byte payload.
private func sampleMessage() -> Message {
    var content = ByteBuffer()
    content.writeRepeatingByte(0x61, count: 256)
    return Message(
        router: MessageRouter(source: "edgecontroller", destination: "metaManager", group: "resource", operation: "update", resource: "default/pod/nginx-7c5ddbdf54-x"),
        content: content)
}

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .throughput, .mallocCountTotal, .instructions],
        scalingFactor: .kilo,
        maxDuration: .seconds(3))

    Benchmark("MessageCodec encode 256 B") { benchmark in
        let message = sampleMessage()
        var buffer = ByteBufferAllocator().buffer(capacity: 1024)
        for _ in benchmark.scaledIterations {
            buffer.clear()
            MessageCodec.encode(message, into: &buffer)
            blackHole(buffer.readableBytes)
        }
    }

    Benchmark("MessageCodec decode 256 B") { benchmark in
        var encoded = ByteBuffer()
        MessageCodec.encode(sampleMessage(), into: &encoded)
        let limits = MessageLimits()
        for _ in benchmark.scaledIterations {
            var input = encoded
            blackHole(try MessageCodec.decode(from: &input, limits: limits))
        }
    }

    Benchmark("FrameCodec decode MESSAGE frame 256 B") { benchmark in
        var encoded = ByteBuffer()
        FrameCodec.encode(.message(MessageFrame(lane: .events, sequence: 0, delivery: .bestEffort, message: sampleMessage())), into: &encoded)
        let limits = FrameLimits()
        for _ in benchmark.scaledIterations {
            var input = encoded
            blackHole(try FrameCodec.decode(from: &input, limits: limits))
        }
    }

    // The whole channel over the in-process link (real frame codec, no sockets): mallocs per
    // message here are what the channel itself costs, send to consume.
    Benchmark("Channel loopback best-effort 256 B (per message)", configuration: .init(scalingFactor: .kilo, maxDuration: .seconds(5))) { benchmark in
        let group = MultiThreadedEventLoopGroup.singleton
        let cloud = try MessageChannel(configuration: ChannelConfiguration(localNodeID: "cloud", peerNodeID: "edge-1"))
        let edge = try MessageChannel(configuration: ChannelConfiguration(localNodeID: "edge-1", peerNodeID: "cloud"))
        LocalLink.connect(client: edge, server: cloud, clientLoop: group.next(), serverLoop: group.next())
        try await edge.waitUntilConnected()
        try await cloud.waitUntilConnected()
        let message = sampleMessage()
        let count = benchmark.scaledIterations.count
        benchmark.startMeasurement()
        let consumer = Task {
            var received = 0
            for await _ in cloud.messages(on: .events) {
                received += 1
                if received == count { break }
            }
        }
        for _ in 0..<count {
            if try edge.trySend(message, on: .events, delivery: .bestEffort) == .wouldBlock {
                try await edge.send(message, on: .events, delivery: .bestEffort)
            }
        }
        await consumer.value
        benchmark.stopMeasurement()
        await edge.close()
        await cloud.close()
    }
}
