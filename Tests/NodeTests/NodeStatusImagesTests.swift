import Foundation
import KubeModel
@testable import Node
import Testing

/// `status.images` as kubelet writes it: the largest images first, at most 50 of them, at
/// most five names each, nameless images left out, and no field at all without images.
@Suite struct NodeStatusImagesTests {
    @Test func theLargestImagesFirstWithinKubeletsLimits() throws {
        var status = NodeStatus(nodeName: "edge", nodeIP: "127.0.0.1", readySince: Date(), containerRuntimeVersion: "containerd://1.7")
        #expect(status.object()[path: ["status", "images"]] == nil, "no images, no field")
        status.images = (0..<60).map { NodeImage(names: ["registry/image-\($0):1"], sizeBytes: Int64($0) * 1000) }
            + [NodeImage(names: [], sizeBytes: 1 << 40), NodeImage(names: (0..<8).map { "registry/many:\($0)" }, sizeBytes: 1 << 30)]
        let images = try #require(status.object()[path: ["status", "images"]]?.arrayValue)
        #expect(images.count == 50)
        #expect(images.first?["names"]?.arrayValue?.count == 5, "five names at most")
        #expect(images.first?["sizeBytes"] == .integer(1 << 30))
        #expect(images[1]["names"] == .array([.string("registry/image-59:1")]))
        let sizes = images.compactMap { $0["sizeBytes"]?.int64Value }
        #expect(sizes == sizes.sorted(by: >), "largest first")
        #expect(!images.contains { $0["names"]?.arrayValue?.isEmpty == true }, "nameless images are left out")
    }
}
