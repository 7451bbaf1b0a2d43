// swift-tools-version:6.1
import PackageDescription

/// The data plane's release builds skip Swift's dynamic exclusivity checks: they were 2% of the director's profile
/// under load (swift_beginAccess/AccessSet::insert). Debug builds, and so the tests, keep them.
let hotPathSettings: [SwiftSetting] = [
    .unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))
]

let package = Package(
    name: "swiftvs",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "swiftvs", targets: ["swiftvs"])
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-nio-http2.git", from: "1.46.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift.git", from: "0.2.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-websocket.git", from: "2.8.1"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.3"),
    ],
    targets: [
        // Reading YAML configs: key paths, line numbers, "did you mean", every problem at once; Endpoint. Every
        // config (the director's, IPTV's, the bench's scenarios) is read with it.
        .target(
            name: "SwiftVSConfigKit",
            dependencies: [
                .product(name: "Yams", package: "Yams")
            ]
        ),
        // The load-balancing core, pure: the director's config and validation, schedulers, persistence, health
        // rise/fall, HTTP/1 head scanners and the retry decision, VRRP. No sockets, clocks or randomness of its own.
        .target(
            name: "SwiftVSCore",
            dependencies: [
                "SwiftVSConfigKit",
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: hotPathSettings
        ),
        // The media core, pure: MPEG-TS demuxer, segmenter, keyframes, HLS playlists, the IPTV config. Used by IPTV.
        .target(
            name: "SwiftVSMedia",
            dependencies: [
                "SwiftVSConfigKit",
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: hotPathSettings
        ),
        // epoll, eventfd and accept4 for the director's relay engine (Swift's Glibc module leaves them out).
        .target(name: "CSwiftVSLinux"),
        // What every target asks of the OS, once: starting and reaping child processes (posix_spawn, inherited
        // descriptors closed) for the director's checks and scripts, the bench's processes and the tests' children;
        // and the monotonic clock.
        .target(name: "SwiftVSSystem", dependencies: ["CSwiftVSLinux"]),
        // Data plane: the epoll relay engine (tcp services), the NIO L7 proxy with its TLS and HTTP/2 fronts, upstream
        // pools, listeners as Services.
        .target(
            name: "SwiftVSDirector",
            dependencies: [
                "SwiftVSConfigKit",
                "SwiftVSCore",
                "CSwiftVSLinux",
                "SwiftVSSystem",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            swiftSettings: hotPathSettings
        ),
        // The video-conference service (`swiftvs conference`): the room hub and signaling protocol (pure), the web,
        // api and signal servers on Hummingbird, the browser client, TURN credentials; and the signaling client the
        // bench and the tests join rooms with.
        .target(
            name: "SwiftVSConference",
            dependencies: [
                "SwiftVSConfigKit",
                "SwiftVSSystem",
                "SwiftVSDirector",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdWebSocket", package: "hummingbird-websocket"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // Load generator, CPU sampler, scenario runner. Talks to directors and real servers only over the network.
        .target(
            name: "SwiftVSBench",
            dependencies: [
                "SwiftVSConfigKit",
                "SwiftVSCore",
                "SwiftVSSystem",
                .product(name: "HummingbirdWSClient", package: "hummingbird-websocket"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: hotPathSettings
        ),
        // IPTV real server: TS ingest (UDP, HTTP push, looped file), HLS live and catch-up, VOD, catalogue, web UI.
        // Reaches the director only over the network.
        .target(
            name: "SwiftVSIPTV",
            dependencies: [
                "SwiftVSConfigKit",
                "SwiftVSCore",
                "SwiftVSMedia",
                "SwiftVSSystem",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            resources: [.copy("Resources/sample.ts")],
            swiftSettings: hotPathSettings
        ),
        .executableTarget(
            name: "swiftvs",
            dependencies: [
                "SwiftVSConfigKit",
                "SwiftVSCore",
                "SwiftVSMedia",
                "SwiftVSSystem",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                "SwiftVSDirector",
                "SwiftVSIPTV",
                "SwiftVSBench",
                "SwiftVSConference",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ]
        ),
        // The fuzz targets (parsers, the exchange machine, loaders), for libFuzzer (`scripts/fuzz.sh`) and for the
        // tests, which replay the committed corpus (`fuzz/corpus`).
        .target(
            name: "SwiftVSFuzz",
            dependencies: ["SwiftVSConfigKit", "SwiftVSCore", "SwiftVSMedia", "SwiftVSBench"]
        ),
        // libFuzzer's driver when built with -D FUZZING (scripts/fuzz.sh); otherwise it replays files.
        .executableTarget(name: "swiftvs-fuzz", dependencies: ["SwiftVSFuzz"]),
        // Helpers for the test targets only: where the built `swiftvs` is, free ports.
        .target(name: "SwiftVSTestSupport", dependencies: ["SwiftVSSystem"]),
        .testTarget(
            name: "SwiftVSFuzzTests",
            dependencies: ["SwiftVSFuzz"]
        ),
        .testTarget(
            name: "SwiftVSSystemTests",
            dependencies: ["SwiftVSSystem"]
        ),
        .testTarget(
            name: "SwiftVSCoreTests",
            dependencies: ["SwiftVSCore", "SwiftVSConfigKit"]
        ),
        .testTarget(
            name: "SwiftVSMediaTests",
            dependencies: ["SwiftVSMedia", "SwiftVSConfigKit"]
        ),
        .testTarget(
            name: "SwiftVSBenchTests",
            dependencies: [
                "SwiftVSConfigKit",
                "SwiftVSCore",
                "SwiftVSSystem",
                "SwiftVSBench",
                "SwiftVSTestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "SwiftVSConferenceTests",
            dependencies: [
                "SwiftVSConference", "SwiftVSConfigKit", "SwiftVSTestSupport", "SwiftVSBench", "SwiftVSCore",
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        .testTarget(
            name: "SwiftVSIPTVTests",
            dependencies: ["SwiftVSCore", "SwiftVSMedia", "SwiftVSTestSupport"]
        ),
        .testTarget(
            name: "SwiftVSDirectorTests",
            dependencies: [
                "SwiftVSConfigKit",
                "SwiftVSCore",
                "SwiftVSDirector",
                "SwiftVSTestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
