// swift-tools-version:6.1
import PackageDescription

let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

/// The KEMI layer's hot path (every KSR.* call) touches per-worker state that only its own
/// thread owns; dynamic exclusivity checks cost ~10% of a KSR.pv.get there, so release builds
/// of that layer skip them. Debug builds (and the tests) keep them.
let hotPath: [SwiftSetting] = strict + [
    .unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release)),
]

/// Generic engines used across a module boundary (the transaction table, generic over the
/// host's peer and context types) run unspecialized there: every call looks up generic
/// metadata and copies values through witness tables, under the table's lock. Release builds
/// make their bodies available to the host module, which specializes them.
let specialized: [SwiftSetting] = strict + [
    .unsafeFlags(["-cross-module-optimization"], .when(configuration: .release)),
]

let package = Package(
    name: "KSRHost",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "ksr", targets: ["ksr"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.6.0"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    ],
    targets: [
        // Lua 5.4 from the system (Debian: liblua5.4-dev) plus the C shim: macros as functions,
        // the trampoline that raises after Swift returns, the aborting allocator and panic handler.
        .systemLibrary(
            name: "CLua",
            pkgConfig: "lua5.4",
            providers: [.apt(["liblua5.4-dev"])]
        ),
        // Linux calls Swift's Glibc module does not import: recvmmsg, eventfd, EPOLLEXCLUSIVE,
        // epoll_pwait2 (the workers' own socket reads and waits).
        .target(name: "CKSRSys"),
        // Shared vocabulary of the engines: clocks, Kamailio's "k=v;" parameter syntax,
        // the kamailio.cfg reader and configuration errors. No Lua, no threads.
        .target(name: "KSRBase", dependencies: ["CKSRSys"], swiftSettings: strict),
        .target(name: "LuaBridge", dependencies: ["CLua"], swiftSettings: strict),
        .target(
            name: "RTimer",
            dependencies: ["KSRBase"],
            swiftSettings: strict
        ),
        .target(
            name: "MQueue",
            dependencies: ["KSRBase"],
            swiftSettings: strict
        ),
        .target(
            name: "MQueueSQLite",
            dependencies: ["KSRBase", "MQueue", .product(name: "GRDB", package: "GRDB.swift")],
            swiftSettings: strict
        ),
        .target(
            name: "KSRCore",
            dependencies: [
                "KSRBase", "CKSRSys",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        // The hand-written SIP codec (RFC 3261 messages, lazy header parsing). No I/O.
        .target(name: "SIP", swiftSettings: strict),
        // RFC 3261 §17 transactions as state machines over an injected clock: no I/O.
        .target(name: "SIPTransaction", dependencies: ["SIP", "KSRBase"], swiftSettings: specialized),
        // Kamailio DMQ's protocol engine: node addresses, node-list bodies, membership, KDMQ
        // requests. No I/O, no Lua, no threads of its own.
        .target(name: "DMQ", dependencies: ["SIP"], swiftSettings: strict),
        // SIP over UDP and TCP on SwiftNIO: listeners, Content-Length framing, sending.
        .target(
            name: "SIPTransport",
            dependencies: [
                "SIP", "KSRBase", "CKSRSys",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        // JSON-RPC 2.0 (HTTP POST /RPC on TCP and on a unix socket), GET /metrics, and the
        // client `ksr rpc` uses. Knows nothing of Lua or of the engines: methods are registered.
        .target(
            name: "Control",
            dependencies: [
                "KSRBase",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "KEMI",
            dependencies: [
                "KSRCore", "LuaBridge", "RTimer", "MQueue", "MQueueSQLite", "Control", "SIP", "SIPTransport", "SIPTransaction", "DMQ",
                .product(name: "HeapModule", package: "swift-collections"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: hotPath
        ),
        .executableTarget(
            name: "ksr",
            dependencies: [
                "KEMI", "KSRCore", "Control",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .testTarget(name: "KSRBaseTests", dependencies: ["KSRBase"], swiftSettings: strict),
        .testTarget(name: "LuaBridgeTests", dependencies: ["LuaBridge", "CLua"], swiftSettings: strict),
        .testTarget(name: "RTimerTests", dependencies: ["RTimer"], swiftSettings: strict),
        .testTarget(name: "MQueueTests", dependencies: ["MQueue"], swiftSettings: strict),
        .testTarget(name: "MQueueSQLiteTests", dependencies: ["MQueueSQLite", "MQueue"], swiftSettings: strict),
        .testTarget(name: "KSRCoreTests", dependencies: ["KSRCore", "CKSRSys"], swiftSettings: strict),
        // The captured KDMQ messages (Tests/Fixtures/dmq), their loader and a seeded generator, for SIPTests and DMQTests.
        .target(name: "KSRTestFixtures", path: "Tests/Fixtures", exclude: ["dmq"], swiftSettings: strict),
        .testTarget(name: "SIPTests", dependencies: ["SIP", "KSRTestFixtures"], swiftSettings: strict),
        .testTarget(name: "SIPTransactionTests", dependencies: ["SIPTransaction", "SIP"], swiftSettings: strict),
        .testTarget(name: "DMQTests", dependencies: ["DMQ", "SIP", "KSRTestFixtures"], swiftSettings: strict),
        .testTarget(name: "SIPTransportTests", dependencies: ["SIPTransport"], swiftSettings: strict),
        .testTarget(name: "ControlTests", dependencies: ["Control"], swiftSettings: strict),
        .testTarget(name: "KEMITests", dependencies: ["KEMI", "MQueue", "RTimer"], swiftSettings: strict),
        .testTarget(
            name: "EndToEndTests",
            dependencies: ["ksr"],
            exclude: ["sipp", "dmq"],
            swiftSettings: strict
        ),
    ],
    swiftLanguageModes: [.v6]
)
