// swift-tools-version:6.0
import PackageDescription

let swift5: [SwiftSetting] = [.swiftLanguageMode(.v5)]

let package = Package(
    name: "devenv-gw",
    products: [
        .executable(name: "devenv-gw", targets: ["devenv-gw"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/LebJe/TOMLKit", from: "0.6.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
    ],
    targets: [
        // System libraries, found through pkg-config.
        .systemLibrary(name: "CLibSSH", pkgConfig: "libssh", providers: [.apt(["libssh-dev"])]),
        .systemLibrary(name: "CCurl", pkgConfig: "libcurl", providers: [.apt(["libcurl4-openssl-dev"])]),
        .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),
        .systemLibrary(name: "CCrypto", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev"])]),
        // Typed wrappers for the variadic and macro C APIs that Swift cannot import.
        .target(name: "CShims", dependencies: ["CLibSSH", "CCurl"]),

        // Thin Swift layers over the C libraries.
        .target(name: "SSHKeys", dependencies: ["CLibSSH"], swiftSettings: swift5),
        .target(name: "CurlHTTP", dependencies: ["CCurl", "CShims"], swiftSettings: swift5),

        // The product's concerns.
        .target(name: "UserNames", swiftSettings: swift5),
        // The metric definitions, counted through swift-metrics' API alone (no NIO, no Prometheus).
        .target(name: "GatewayMetrics", dependencies: [.product(name: "CoreMetrics", package: "swift-metrics")],
                swiftSettings: swift5),
        // The Prometheus registry and the /metrics HTTP listener (SwiftNIO, one thread of its own).
        .target(
            name: "MetricsEndpoint",
            dependencies: [
                "GatewayMetrics",
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: swift5
        ),
        .target(name: "DockerEngine", dependencies: ["CurlHTTP", "GatewayMetrics"], swiftSettings: swift5),
        .target(name: "Registry", dependencies: ["CSQLite", "SSHKeys", "UserNames"], swiftSettings: swift5),
        .target(name: "Tar", swiftSettings: swift5),
        .target(name: "Workspaces", dependencies: ["DockerEngine", "UserNames", "Tar", "GatewayMetrics"],
                swiftSettings: swift5),
        .target(name: "Backup", dependencies: ["CCrypto", "Tar", "Registry", "SSHKeys", "Workspaces", "DockerEngine", "UserNames"],
                swiftSettings: swift5),
        .target(name: "Audit", dependencies: ["GatewayMetrics"], swiftSettings: swift5),
        // The firewall rules that keep workspaces from the gateway host and cloud metadata.
        .target(name: "Egress", swiftSettings: swift5),
        .target(
            name: "Gateway",
            dependencies: [
                "CLibSSH", "CShims", "SSHKeys", "UserNames", "Workspaces", "Audit", "GatewayMetrics",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
            ],
            swiftSettings: swift5
        ),
        .executableTarget(
            name: "devenv-gw",
            dependencies: [
                "Gateway", "Registry", "Workspaces", "DockerEngine", "CurlHTTP", "SSHKeys", "Audit", "UserNames", "Backup", "Egress",
                "GatewayMetrics", "MetricsEndpoint",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "TOMLKit", package: "TOMLKit"),
            ],
            swiftSettings: swift5
        ),

        .testTarget(name: "SSHKeysTests", dependencies: ["SSHKeys"], swiftSettings: swift5),
        .testTarget(name: "DockerEngineTests", dependencies: ["DockerEngine", "CurlHTTP", "TestSupport"], swiftSettings: swift5),
        .testTarget(name: "WorkspacesTests", dependencies: ["Workspaces", "SSHKeys", "TestSupport"], swiftSettings: swift5),
        .testTarget(name: "RegistryTests", dependencies: ["Registry", "SSHKeys", "UserNames", "CSQLite"], swiftSettings: swift5),
        .testTarget(name: "CLITests", dependencies: ["TestSupport"], swiftSettings: swift5),
        .testTarget(name: "BackupTests", dependencies: ["Backup", "Tar", "Registry", "TestSupport"], swiftSettings: swift5),
        .testTarget(name: "LifecycleTests", dependencies: ["TestSupport"], swiftSettings: swift5),
        .testTarget(name: "GatewayTests", dependencies: ["Gateway", "SSHKeys", "TestSupport"],
                    exclude: ["Scripts"],  // Python clients the data-integrity tests run
                    swiftSettings: swift5),
        .testTarget(name: "AuditTests", dependencies: ["Audit", "TestSupport"], swiftSettings: swift5),
        .testTarget(name: "EgressTests", dependencies: ["Egress", "TestSupport"], swiftSettings: swift5),
        // Against the three-node test swarm of scripts/swarm-cluster.sh.
        .testTarget(name: "SwarmTests", dependencies: ["DockerEngine", "TestSupport"], swiftSettings: swift5),
        .testTarget(name: "GatewayImageTests", dependencies: ["TestSupport"], swiftSettings: swift5),
        .target(name: "TestSupport", dependencies: ["DockerEngine"], path: "Tests/TestSupport", swiftSettings: swift5),
    ]
)
