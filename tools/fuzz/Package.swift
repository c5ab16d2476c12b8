// swift-tools-version:6.0
// The fuzz targets: one libFuzzer executable per decoder that faces the network. A package of
// its own so that building the product never builds them; `make fuzz` (tools/fuzz/run.sh)
// builds them with libFuzzer and AddressSanitizer and runs each over its seed corpus
// (`tools/fuzz/corpus/TARGET`). Entry points live in files not named main.swift, so that their
// globals are initialised lazily: libFuzzer's main runs, not Swift's top-level code.
import Foundation
import PackageDescription

// SwiftPM names a path dependency after its directory (the checkout's, whatever it is called).
let product = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../..").standardized
let productPackage = product.lastPathComponent.lowercased()

func productModule(_ name: String) -> Target.Dependency { .product(name: name, package: productPackage) }

let strictSwift6: [SwiftSetting] = [.swiftLanguageMode(.v6)]

func fuzzTarget(_ name: String, _ dependencies: [Target.Dependency]) -> Target {
    .executableTarget(name: name, dependencies: dependencies + [.product(name: "NIOCore", package: "swift-nio")], swiftSettings: strictSwift6)
}

let package = Package(
    name: "swift-kubeedge-fuzz",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(path: product.path),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
    ],
    targets: [
        fuzzTarget("fuzz-frame", [productModule("Transport")]),
        fuzzTarget("fuzz-message", [productModule("Transport")]),
        fuzzTarget("fuzz-websocket", [
            productModule("Transport"), .product(name: "NIOEmbedded", package: "swift-nio"), .product(name: "Logging", package: "swift-log"),
        ]),
        fuzzTarget("fuzz-kube-json", [productModule("KubeModel")]),
        fuzzTarget("fuzz-quic", [
            productModule("Transport"), .product(name: "NIOEmbedded", package: "swift-nio"), .product(name: "Logging", package: "swift-log"),
        ]),
        fuzzTarget("fuzz-twin", [productModule("Node"), "FuzzSupport"]),
        fuzzTarget("fuzz-bootstrap", [productModule("CloudHub"), "FuzzSupport"]),
        .target(name: "FuzzSupport", swiftSettings: strictSwift6),
    ]
)
