// swift-tools-version: 6.2
import PackageDescription

// One loop turns on the same upcoming features for every target (as Hummingbird does).
let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "Custos",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "custos", targets: ["custos"]),
        .library(name: "CustosCrypto", targets: ["CustosCrypto"]),
        // The parsers of untrusted bytes, for the libFuzzer harnesses in Fuzz/ (a separate package; see README).
        .library(name: "CustosTDX", targets: ["CustosTDX"]),
        .library(name: "CustosSEV", targets: ["CustosSEV"]),
        .library(name: "CustosUKI", targets: ["CustosUKI"]),
        .library(name: "CustosPolicy", targets: ["CustosPolicy"]),
        .library(name: "CustosKBS", targets: ["CustosKBS"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        .package(url: "https://github.com/hummingbird-project/swift-mustache", from: "2.1.1"),
        // TLS trust roots of the guest agent's client (`--ca`); already in the graph through AsyncHTTPClient.
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
    ],
    targets: [
        // MARK: C system libraries: module maps and shims only.
        .systemLibrary(
            name: "COpenSSL",
            pkgConfig: "openssl",
            providers: [.apt(["libssl-dev"])]
        ),
        .systemLibrary(
            name: "CLibvirt",
            pkgConfig: "libvirt",
            providers: [.apt(["libvirt-dev"])]
        ),

        // MARK: Libraries
        .target(name: "CustosCrypto", dependencies: ["COpenSSL"]),
        .target(name: "CustosAnchors", dependencies: ["CustosCrypto", "CustosSEV"]),
        .target(name: "CustosTDX", dependencies: ["CustosCrypto"]),
        .target(name: "CustosSEV", dependencies: ["CustosCrypto"]),
        .target(name: "CustosUKI", dependencies: ["CustosCrypto"]),
        // KBS protocol 0.4.0 wire types, REPORTDATA binding, EAR tokens (issuer/verifier): no HTTP.
        .target(name: "CustosKBS", dependencies: ["CustosCrypto"]),
        // The only code that imports CLibvirt: connection, Hypervisor protocol, domain capabilities, domain XML, host check.
        .target(
            name: "CustosVirt",
            dependencies: [
                "CLibvirt", "CustosCrypto", "CustosUKI", .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOHTTP1", package: "swift-nio"),
            ]),
        // Tenants' policies: strict YAML load, content addressing, evaluation into decision + trust vector + trace.
        .target(name: "CustosPolicy", dependencies: ["CustosCrypto", .product(name: "Yams", package: "Yams")]),
        // State: SQLite through GRDB (tenants, credentials, sealed secrets, reference values, appraisals, launches).
        .target(name: "CustosStore", dependencies: ["CustosCrypto", .product(name: "GRDB", package: "GRDB.swift")]),
        // The append-only, verifiable log: JCS entries, RFC 6962 tree, signed C2SP checkpoints, proofs.
        .target(
            name: "CustosAudit",
            dependencies: ["CustosCrypto", "CustosStore", .product(name: "GRDB", package: "GRDB.swift")]
        ),
        // The HTTP service: KBS protocol 0.4.0, the /v1 API, EAR tokens, audit API, limits and metrics.
        .target(
            name: "CustosServer",
            dependencies: [
                "CustosCrypto", "CustosAnchors", "CustosTDX", "CustosSEV", "CustosUKI",
                "CustosPolicy", "CustosStore", "CustosAudit", "CustosKBS",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                // Collateral from Intel PCS or a PCCS on a cache miss.
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                // The review console's server-rendered pages (/ui/).
                .product(name: "Mustache", package: "swift-mustache"),
            ],
            resources: [.embedInCode("Resources/openapi.yaml")]
        ),
        // C shims for system calls Glibc's Swift module does not import (statfs(2) for the agent's tmpfs check).
        .target(name: "CCustosSystem"),
        // The guest agent: configfs-tsm quotes, CCEL, the KBS client, secret files on tmpfs, efi_secret (issue 13).
        .target(
            name: "CustosAgent",
            dependencies: [
                "CCustosSystem", "CustosCrypto", "CustosTDX", "CustosKBS",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ]
        ),
        .target(
            name: "CustosCLI",
            dependencies: [
                "CustosCrypto", "CustosAnchors", "CustosTDX", "CustosSEV", "CustosUKI",
                "CustosPolicy", "CustosStore", "CustosAudit", "CustosServer", "CustosVirt", "CustosAgent",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        .executableTarget(name: "custos", dependencies: ["CustosCLI"]),
        // Load generators with test evidence (`custos-bench kbs`): separate, so `custos` links no test support.
        .executableTarget(
            name: "custos-bench",
            dependencies: [
                "CustosCrypto", "CustosKBS", "CustosTDX", "CustosTestSupport",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        // Test-only: emulated SEV firmware, TDX quote generator with a test PCK hierarchy, test UKI builders, testdata lookup.
        .target(
            name: "CustosTestSupport",
            dependencies: [
                "CustosCrypto", "CustosTDX", "CustosSEV", "CustosUKI", "CustosVirt",
                // A canned HTTP server (a local PCCS for the collateral fetch tests).
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),

        // MARK: Tests
        .testTarget(name: "CustosCryptoTests", dependencies: ["CustosCrypto", "CustosTestSupport"]),
        .testTarget(
            name: "CustosTDXTests",
            dependencies: [
                "CustosTDX", "CustosCrypto", "CustosTestSupport", "CustosCLI", "CustosServer",
                // A local PCCS (NIO HTTP server) and the fetcher's client for the collateral-fetch test.
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        .testTarget(name: "CustosSEVTests", dependencies: ["CustosSEV", "CustosCrypto", "CustosTestSupport", "CustosCLI"]),
        .testTarget(name: "CustosUKITests", dependencies: ["CustosUKI", "CustosCrypto", "CustosTestSupport", "CustosCLI"]),
        .testTarget(name: "CustosAnchorsTests", dependencies: ["CustosAnchors", "CustosCrypto", "CustosTestSupport"]),
        .testTarget(name: "CustosPolicyTests", dependencies: ["CustosPolicy", "CustosCrypto", "CustosTestSupport", "CustosCLI"]),
        .testTarget(
            name: "CustosStoreTests",
            dependencies: ["CustosStore", "CustosCrypto", "CustosTestSupport", .product(name: "GRDB", package: "GRDB.swift")]
        ),
        .testTarget(
            name: "CustosAuditTests",
            dependencies: [
                "CustosAudit", "CustosStore", "CustosCrypto", "CustosTestSupport", "CustosCLI",
                .product(name: "GRDB", package: "GRDB.swift"),
            ]
        ),
        .testTarget(
            name: "CustosServerTests",
            dependencies: [
                "CustosServer", "CustosStore", "CustosCrypto", "CustosTestSupport",
                "CustosSEV", "CustosAudit", "CustosTDX", "CustosVirt",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "Yams", package: "Yams"), .product(name: "GRDB", package: "GRDB.swift"),
            ]
        ),
        .testTarget(
            name: "CustosVirtTests", dependencies: ["CustosVirt", "CustosCrypto", "CustosUKI", "CustosTestSupport", "CustosCLI"]),
        .testTarget(name: "CustosKBSTests", dependencies: ["CustosKBS", "CustosCrypto", "CustosTestSupport"]),
        .testTarget(
            name: "CustosAgentTests",
            dependencies: [
                "CustosAgent", "CustosCLI", "CustosCrypto", "CustosKBS", "CustosTDX", "CustosTestSupport",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        .testTarget(name: "CustosCLITests", dependencies: ["CustosCLI", "CustosAnchors", "CustosCrypto", "CustosTestSupport"]),
    ]
)

// (C targets take no Swift settings.)
for target in package.targets where target.type != .system && target.name != "CCustosSystem" {
    target.swiftSettings = (target.swiftSettings ?? []) + swiftSettings
}
