// swift-tools-version: 6.2
import PackageDescription

// libFuzzer harnesses for every Custos parser of untrusted bytes (issue 9).
//
// A separate package so that the normal build never compiles them: `scripts/fuzz/run.sh` (called by `make fuzz` and
// the smoke in `make test`) builds it with `--sanitize=fuzzer --sanitize=address` into `.build-fuzz/`, which
// instruments CustosCrypto, CustosTDX, CustosSEV, CustosUKI,
// CustosPolicy (and Yams) and CustosKBS too. The one executable holds every harness (one
// instrumented build, one link); `CUSTOS_FUZZ_HARNESS` picks the harness. `-parse-as-library` leaves `main` to
// libFuzzer.
let package = Package(
    name: "CustosFuzz",
    platforms: [.macOS(.v15)],
    dependencies: [.package(name: "Custos", path: "..")],
    targets: [
        .executableTarget(
            name: "CustosFuzz",
            dependencies: [
                .product(name: "CustosCrypto", package: "Custos"),
                .product(name: "CustosTDX", package: "Custos"),
                .product(name: "CustosSEV", package: "Custos"),
                .product(name: "CustosUKI", package: "Custos"),
                .product(name: "CustosPolicy", package: "Custos"),
                .product(name: "CustosKBS", package: "Custos"),
            ],
            swiftSettings: [
                .unsafeFlags(["-parse-as-library"]),
                .enableUpcomingFeature("ExistentialAny"),
                .enableUpcomingFeature("MemberImportVisibility"),
                .enableUpcomingFeature("InternalImportsByDefault"),
            ]
        )
    ]
)
