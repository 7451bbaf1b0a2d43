// swift-tools-version:6.1
import PackageDescription

/// The data plane's release builds skip Swift's dynamic exclusivity checks: they were 2% of the director's profile
/// under load (swift_beginAccess/AccessSet::insert). Debug builds, and so the tests, keep them.
let hotPathSettings: [SwiftSetting] = [
    .unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release)),
]

let package = Package(
    name: "swiftvs",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "swiftvs", targets: ["swiftvs"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift.git", from: "0.2.0"),
    ],
    targets: [
        // Pure core: config + validation, schedulers, persistence. No sockets, clocks or randomness of its own.
        .target(
            name: "SwiftVSCore",
            dependencies: [
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
        // Data plane: the epoll relay engine (tcp services), the NIO L7 proxy, upstream pools, listeners as Services.
        .target(
            name: "SwiftVSDirector",
            dependencies: [
                "SwiftVSCore",
                "CSwiftVSLinux",
                "SwiftVSSystem",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            swiftSettings: hotPathSettings
        ),
        // Load generator, CPU sampler, scenario runner. Talks to directors and real servers only over the network.
        .target(
            name: "SwiftVSBench",
            dependencies: [
                "SwiftVSCore",
                "SwiftVSSystem",
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
                "SwiftVSCore",
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
                "SwiftVSCore",
                "SwiftVSDirector",
                "SwiftVSIPTV",
                "SwiftVSBench",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ]
        ),
        // Helpers for the test targets only: where the built `swiftvs` is, free ports.
        .target(name: "SwiftVSTestSupport", dependencies: ["SwiftVSSystem"]),
        .testTarget(
            name: "SwiftVSSystemTests",
            dependencies: ["SwiftVSSystem"]
        ),
        .testTarget(
            name: "SwiftVSCoreTests",
            dependencies: ["SwiftVSCore"]
        ),
        .testTarget(
            name: "SwiftVSBenchTests",
            dependencies: [
                "SwiftVSCore",
                "SwiftVSSystem",
                "SwiftVSBench",
                "SwiftVSTestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "SwiftVSIPTVTests",
            dependencies: ["SwiftVSCore", "SwiftVSTestSupport"]
        ),
        .testTarget(
            name: "SwiftVSDirectorTests",
            dependencies: [
                "SwiftVSCore",
                "SwiftVSDirector",
                "SwiftVSTestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
