// swift-tools-version: 6.1
// The product package: the cloud-edge channel and, as later issues land, the hubs and modules.
// Benchmarks/ is a nested package so that building the product never builds package-benchmark;
// the benchmark executables (channel-bench, tools/transport-bench) are small and live here so that
// `swift run -c release transport-bench` works from the top.
import PackageDescription

let strictSwift6: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
]

let package = Package(
    name: "swift-kubeedge",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "Storage", targets: ["Storage"]),
        .library(name: "Transport", targets: ["Transport"]),
        .library(name: "CloudHub", targets: ["CloudHub"]),
        .library(name: "EdgeHub", targets: ["EdgeHub"]),
        .executable(name: "channel-bench", targets: ["channel-bench"]),
        .executable(name: "transport-bench", targets: ["transport-bench"]),
        .executable(name: "cloudcore", targets: ["cloudcore"]),
        .executable(name: "edgecore", targets: ["edgecore"]),
        .executable(name: "keadm", targets: ["keadm"]),
        .executable(name: "node-bench", targets: ["node-bench"]),
        .executable(name: "api-bench", targets: ["api-bench"]),
        .executable(name: "workload-bench", targets: ["workload-bench"]),
        .executable(name: "container-shim", targets: ["container-shim"]),
        .library(name: "Node", targets: ["Node"]),
        .library(name: "Cloud", targets: ["Cloud"]),
        .library(name: "KubeModel", targets: ["KubeModel"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        // HTTP/2 for Edged's CRI client (gRPC over containerd's unix socket); its protobuf
        // messages are encoded by hand, so neither swift-protobuf nor grpc-swift is needed.
        .package(url: "https://github.com/apple/swift-nio-http2.git", from: "1.46.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift.git", from: "0.2.0"),
        // The daemons: YAML configuration, graceful lifecycle, Prometheus metrics.
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
    ],
    targets: [
        // System C libraries (Debian packages; `make deps` installs them).
        .systemLibrary(
            name: "CNGTCP2", path: "Sources/C/CNGTCP2", pkgConfig: "libngtcp2_crypto_gnutls",
            providers: [.apt(["libngtcp2-dev", "libngtcp2-crypto-gnutls-dev", "libgnutls28-dev"])]),
        .systemLibrary(
            name: "CNGHTTP3", path: "Sources/C/CNGHTTP3", pkgConfig: "libnghttp3",
            providers: [.apt(["libnghttp3-dev"])]),
        .systemLibrary(
            name: "CSQLite", path: "Sources/C/CSQLite", pkgConfig: "sqlite3",
            providers: [.apt(["libsqlite3-dev"])]),
        .systemLibrary(
            name: "CMosquitto", path: "Sources/C/CMosquitto", pkgConfig: "libmosquitto",
            providers: [.apt(["libmosquitto-dev"])]),

        // The only SQLite code: one database per file with its own threads and group commit, and
        // the revisioned watch hub both object stores use.
        .target(
            name: "Storage",
            dependencies: [
                "CSQLite",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ],
            swiftSettings: strictSwift6),

        // The channel: messages, frames, lanes, outbox, in-process bus, WebSocket backend.
        .target(
            name: "Transport",
            dependencies: [
                "Storage",
                "CNGTCP2",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSwift6),

        // The cloud end of every node's channel: listeners, node sessions, node CA and its HTTPS endpoint.
        .target(
            name: "CloudHub",
            dependencies: [
                "Transport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSwift6),

        // The edge end: join, QUIC-first connect with WebSocket fallback, reconnect, module routing.
        .target(
            name: "EdgeHub",
            dependencies: [
                "Transport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSwift6),

        // What the benchmark tools share: shell commands and the iperf3 baselines.
        .target(name: "BenchSupport", dependencies: [.product(name: "Logging", package: "swift-log")], swiftSettings: strictSwift6),

        // Channel throughput over WebSocket+TLS with an iperf3 baseline; `--demo` for `make run`.
        .executableTarget(
            name: "channel-bench",
            dependencies: [
                "Transport", "BenchSupport", .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSwift6),

        // Helpers shared by the test targets.
        .target(
            name: "TestSupport",
            dependencies: [
                "Transport", "CloudHub", "EdgeHub", "Node", "Cloud", "KubeModel", .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"), .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Tests/TestSupport",
            swiftSettings: strictSwift6),
        // Kubernetes objects as data, shared by the cloud and the edge: JSON values that keep
        // every field, merge and strategic merge patch, label selectors.
        .target(name: "KubeModel", swiftSettings: strictSwift6),

        // Pseudo-terminals and close-on-exec pipes for Edged's exec and attach sessions (glibc
        // declares them only under _GNU_SOURCE, which Swift's Glibc module leaves out).
        .target(name: "CProcessSpawn", path: "Sources/C/CProcessSpawn"),

        // The edge modules: MetaManager and MetaServer, EventBus (MQTT), DeviceTwin, ServiceBus.
        .target(
            name: "Node",
            dependencies: [
                "Storage", "Transport", "KubeModel", "CMosquitto", "CProcessSpawn", .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"), .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "NIOHPACK", package: "swift-nio-http2"), .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSwift6),

        // Runs one container process for Edged's process runtime and records how it ended (C, no
        // dependencies: it outlives edgecore and must start fast).
        .executableTarget(name: "container-shim", path: "Sources/container-shim"),

        // What both daemons share: strict YAML configuration over defaults, modules as lifecycle
        // services, the Prometheus /metrics endpoint.
        .target(
            name: "DaemonSupport",
            dependencies: [
                "Transport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: strictSwift6),

        // The edge daemon: edgecore.yaml, the modules on one bus, graceful lifecycle, /metrics.
        .executableTarget(
            name: "edgecore",
            dependencies: [
                "Storage", "Transport", "EdgeHub", "Node", "DaemonSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: strictSwift6),

        // The cloud side above the hubs: Kubernetes API access (KubeAPI), and later the embedded
        // API server and the controllers.
        .target(
            name: "Cloud",
            dependencies: [
                "Storage", "Transport", "CloudHub", "KubeModel", .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"), .product(name: "NIOSSL", package: "swift-nio-ssl"), .product(name: "Logging", package: "swift-log"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSwift6),

        // The cloud daemon: cloudcore.yaml, CloudHub, the controllers, the embedded API server by
        // default, graceful lifecycle, /metrics; and its admin commands (`cloudcore gettoken`,
        // `cloudcore apiserver`).
        .executableTarget(
            name: "cloudcore",
            dependencies: [
                "Transport", "CloudHub", "Cloud", "DaemonSupport", .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"), .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Metrics", package: "swift-metrics"), .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: strictSwift6),

        // The admin CLI in the spirit of KubeEdge's keadm: init, gettoken, join, reset.
        .executableTarget(
            name: "keadm",
            dependencies: ["KubeModel", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: strictSwift6),

        // The hubs' macro benchmark against iperf3 and nats-server (`swift run -c release transport-bench --help`).
        .executableTarget(
            name: "transport-bench",
            dependencies: [
                "Transport", "CloudHub", "BenchSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ],
            path: "tools/transport-bench",
            swiftSettings: strictSwift6),

        // The edge modules' figures against same-run baselines (`swift run -c release node-bench`).
        .executableTarget(
            name: "node-bench",
            dependencies: [
                "Storage", "Transport", "CloudHub", "EdgeHub", "Node", "KubeModel", "BenchSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "tools/node-bench",
            swiftSettings: strictSwift6),

        // The embedded API server's figures against same-run baselines (`swift run -c release api-bench`).
        .executableTarget(
            name: "api-bench",
            dependencies: [
                "Storage", "Transport", "Cloud", "KubeModel", "BenchSupport",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "tools/api-bench",
            swiftSettings: strictSwift6),

        // The embedded scheduler's throughput against a same-run baseline (`swift run -c release workload-bench`).
        .executableTarget(
            name: "workload-bench",
            dependencies: [
                "Cloud", "KubeModel", "BenchSupport",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "tools/workload-bench",
            swiftSettings: strictSwift6),

        // cloudcore's figures against same-run baselines (`swift run -c release cloud-bench`).
        .executableTarget(
            name: "cloud-bench",
            dependencies: [
                "Transport", "EdgeHub", "BenchSupport", "Cloud", "KubeModel",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "tools/cloud-bench",
            swiftSettings: strictSwift6),

        .testTarget(
            name: "StorageTests",
            dependencies: ["Storage", .product(name: "NIOConcurrencyHelpers", package: "swift-nio")],
            swiftSettings: strictSwift6),
        .testTarget(
            name: "TransportTests",
            dependencies: [
                "Storage", "Transport", "TestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
            ],
            exclude: ["Peers"],
            swiftSettings: strictSwift6),
        .testTarget(
            name: "HubTests",
            dependencies: [
                "Transport", "CloudHub", "EdgeHub", "TestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSwift6),
        .testTarget(
            name: "NodeTests",
            dependencies: [
                "Storage", "Node", "KubeModel", "TestSupport", "Transport", "CloudHub", "EdgeHub", .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSwift6),
        .testTarget(
            name: "CloudTests",
            dependencies: ["Storage", "Cloud", "CloudHub", "EdgeHub", "KubeModel", "Transport", "TestSupport"],
            exclude: ["testdata"],
            swiftSettings: strictSwift6),
        // The product end to end: cloudcore, edgecore, kubectl and mosquitto as real processes.
        .testTarget(
            name: "EndToEndTests",
            dependencies: [
                "TestSupport", "Node", "Transport", "EdgeHub",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: strictSwift6),
        .testTarget(
            name: "SystemLibrariesTests",
            dependencies: ["CNGTCP2", "CNGHTTP3", "CMosquitto"],
            swiftSettings: strictSwift6),
    ]
)
