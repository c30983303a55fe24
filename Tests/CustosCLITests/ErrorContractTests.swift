import CustosTestSupport
import Foundation
import Testing

/// The one error contract of every `custos` command (issue 9, ErrorContract.swift): each subcommand is run (as the
/// real executable) with a missing file, an empty file, a directory in place of the file and a corrupted file, and
/// must exit with the contract's status — 1 for evidence checked and rejected (malformed included), 2 for input
/// Custos could not use — print exactly one JSON object on stdout under `--json`, with `error` in the contract's
/// shape, a human line on stderr, and never a trap or a stack trace.
@Suite(Requirement.executableAndTestData, .serialized)
struct ErrorContractTests {
    /// One subcommand with one file argument replaced by the input under test.
    struct Case: CustomStringConvertible, Sendable {
        let name: String
        /// The argument list; `"@"` marks the file under test.
        let arguments: [String]
        /// A corrupted version of a valid input (written to a file).
        let corrupted: @Sendable () throws -> [UInt8]
        /// Expected status for missing, empty, directory, corrupted (nil: not checked for this case).
        let expected: [Int32?]
        var description: String { name }
    }

    static func tdx(_ path: String) -> String { TestData.url("tdx/" + path).path }
    static func sev(_ path: String) -> String { TestData.url("sev/" + path).path }

    static func flipped(_ path: String, at offset: Int) -> @Sendable () throws -> [UInt8] {
        {
            var bytes = try TestData.bytes(path)
            bytes[offset] ^= 0x5a
            return bytes
        }
    }

    static func prefix(_ path: String, _ count: Int) -> @Sendable () throws -> [UInt8] {
        { Array(try TestData.bytes(path).prefix(count)) }
    }

    static var cases: [Case] {
        let q01 = "tdx/quotes/q01_dcapqvl_tdx_v4.bin"
        let c1 = tdx("collateral/c1_dcapqvl_2025-06_B0C06F")
        let root = tdx("root/intel_sgx_root_ca.pem")
        let at = "2025-07-01T00:00:00Z"
        let log = "tdx/eventlog/gotdx_ccel_data.dat"
        let romeChain = ["pek", "oca", "cek"].map { sev("platform-chains/rome/\($0).cert") }
        let garbage: @Sendable () -> [UInt8] = { Array("MZ this is not what it claims to be".utf8) + [UInt8](repeating: 0xee, count: 300) }
        let measurement = Data(repeating: 0, count: 48).base64EncodedString()
        let v: (Int32?, Int32?, Int32?, Int32?) -> [Int32?] = { [$0, $1, $2, $3] }
        return [
            Case(
                name: "tdx verify --quote", arguments: ["tdx", "verify", "--quote", "@", "--collateral", c1, "--at", at, "--root", root],
                corrupted: prefix(q01, 700), expected: v(2, 1, 2, 1)),
            Case(
                name: "tdx verify --collateral",
                arguments: [
                    "tdx", "verify", "--quote", tdx("quotes/q01_dcapqvl_tdx_v4.bin"), "--collateral", "@", "--at", at, "--root", root,
                ],
                corrupted: prefix("tdx/collateral/c1_dcapqvl_2025-06_B0C06F/collateral.json", 5000), expected: v(2, 2, 2, 2)),
            Case(
                name: "tdx verify --root",
                arguments: [
                    "tdx", "verify", "--quote", tdx("quotes/q01_dcapqvl_tdx_v4.bin"), "--collateral", c1, "--at", at, "--root", "@",
                ],
                corrupted: garbage, expected: v(2, 2, 2, 2)),
            Case(name: "tdx inspect", arguments: ["tdx", "inspect", "--quote", "@"], corrupted: prefix(q01, 700), expected: v(2, 1, 2, 1)),
            Case(
                name: "tdx eventlog --log", arguments: ["tdx", "eventlog", "--log", "@"], corrupted: flipped(log, at: 4),
                expected: v(2, 1, 2, 1)),
            Case(
                name: "tdx eventlog --table", arguments: ["tdx", "eventlog", "--log", TestData.url(log).path, "--table", "@"],
                corrupted: flipped("tdx/eventlog/gotdx_ccel_table.dat", at: 0), expected: v(2, 1, 2, 1)),
            Case(
                name: "tdx eventlog --quote", arguments: ["tdx", "eventlog", "--log", TestData.url(log).path, "--quote", "@"],
                corrupted: prefix("tdx/quotes/q10_gotdx_cos113_v4.bin", 600), expected: v(2, 1, 2, 1)),
            Case(
                name: "sev verify-chain --pdh",
                arguments: ["sev", "verify-chain", "--pdh", "@", "--cert-chain", "@chain", "--roots", sev("amd-roots")],
                corrupted: flipped("sev/platform-chains/rome/pdh.cert", at: 0x41C + 5), expected: v(2, 1, 2, 1)),
            Case(
                name: "sev session --pdh", arguments: ["sev", "session", "--pdh", "@", "--policy", "7", "--out", "@out"],
                corrupted: flipped("sev/platform-chains/rome/pdh.cert", at: 0x08), expected: v(2, 1, 2, 1)),
            Case(
                name: "sev measure --firmware",
                arguments: [
                    // SEV-ES (policy 7) needs the firmware's footer (reset vector): an empty or zeroed image is unusable.
                    "sev", "measure", "--firmware", "@", "--policy", "7", "--cpu-family", "25", "--cpu-model", "1", "--cpu-stepping", "1",
                ],
                corrupted: { [UInt8](repeating: 0, count: 4096) }, expected: v(2, 2, 2, 2)),
            Case(
                name: "sev check-measurement --tik",
                arguments: [
                    "sev", "check-measurement", "--sev-measurement", measurement, "--tik", "@", "--firmware",
                    sev("crosscheck/synthetic-ovmf.fd"), "--policy", "3", "--api-major", "0", "--api-minor", "24", "--build-id", "15",
                ],
                corrupted: { [UInt8](repeating: 1, count: 15) }, expected: v(2, 2, 2, 2)),
            Case(
                name: "sev secret --tek",
                arguments: [
                    "sev", "secret", "--tek", "@", "--tik", sev("crosscheck/tik.bin"), "--measurement", measurement, "--secret",
                    "luks-key:" + sev("crosscheck/secret-luks.txt"),
                ],
                corrupted: { [UInt8](repeating: 1, count: 17) }, expected: v(2, 2, 2, 2)),
            Case(name: "uki verify FILE", arguments: ["uki", "verify", "@", "--cert", root], corrupted: garbage, expected: v(2, 1, 2, 1)),
            Case(
                name: "uki verify --cert", arguments: ["uki", "verify", tdx("quotes/q01_dcapqvl_tdx_v4.bin"), "--cert", "@"],
                corrupted: garbage, expected: v(2, 2, 2, 2)),
            Case(name: "uki inspect", arguments: ["uki", "inspect", "@"], corrupted: garbage, expected: v(2, 1, 2, 1)),
            Case(
                name: "uki booted", arguments: ["uki", "booted", "@", "--log", TestData.url(log).path], corrupted: garbage,
                expected: v(2, 1, 2, 1)),
            Case(
                name: "bench tdx-verify --quote",
                arguments: ["bench", "tdx-verify", "--quote", "@", "--collateral", c1, "--at", at, "--root", root, "--iterations", "1"],
                corrupted: prefix(q01, 700), expected: v(2, 1, 2, 1)),
            Case(
                name: "bench sev-measure --firmware", arguments: ["bench", "sev-measure", "--firmware", "@", "--iterations", "1"],
                corrupted: { [UInt8](repeating: 0, count: 4096) }, expected: v(2, 2, 2, 2)),
            Case(name: "certs list --certs", arguments: ["certs", "list", "--certs", "@"], corrupted: garbage, expected: v(2, 2, 2, 2)),
        ]
    }

    enum Input: String, CaseIterable { case missing, empty, directory, corrupted }

    @Test("every subcommand: missing, empty, directory and corrupted inputs", arguments: cases)
    func contract(_ testCase: Case) throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("custos-contract-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let chain = dir.appendingPathComponent("chain.bin")
        var chainBytes: [UInt8] = []
        for name in ["pek", "oca", "cek"] { chainBytes += try TestData.bytes("sev/platform-chains/rome/\(name).cert") }
        try Data(chainBytes).write(to: chain)

        for (index, input) in Input.allCases.enumerated() {
            let path: String
            switch input {
            case .missing:
                path = dir.appendingPathComponent("does-not-exist").path
            case .empty:
                path = dir.appendingPathComponent("empty").path
                try Data().write(to: URL(fileURLWithPath: path))
            case .directory:
                path = dir.appendingPathComponent("a-directory").path
                try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
            case .corrupted:
                path = dir.appendingPathComponent("corrupted").path
                try Data(try testCase.corrupted()).write(to: URL(fileURLWithPath: path))
            }
            let arguments =
                testCase.arguments.map { argument in
                    switch argument {
                    case "@": path
                    case "@chain": chain.path
                    case "@out": dir.appendingPathComponent("out-\(input)").path
                    default: argument
                    }
                } + ["--json"]
            let result = try CustosExecutable.run(arguments)
            let label = "\(testCase.name) with a \(input) file"
            if let expected = testCase.expected[index] {
                #expect(result.status == expected, "\(label): exit \(result.status)\n\(result.stdout)\n\(result.stderr)")
            } else {
                #expect(result.status == 1 || result.status == 2, "\(label): exit \(result.status)")
            }
            for trap in ["Fatal error", "Stack dump", "Current stack trace", "Illegal instruction", "Segmentation fault"] {
                #expect(!result.stderr.contains(trap), "\(label) trapped: \(result.stderr)")
            }
            guard result.status != 0 else { continue }
            // Exactly one JSON object on stdout, with the contract's error shape.
            let data = Data(result.stdout.utf8)
            let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
            #expect(object != nil, "\(label): stdout is not one JSON object: \(result.stdout)")
            let error = object?["error"] as? [String: Any]
            #expect(error?["code"] is String && error?["message"] is String, "\(label): no {error: {code, message}}: \(result.stdout)")
            let keys = Set(error.map { Array($0.keys) } ?? [])
            let allowed: Set<String> = ["code", "message", "field", "offset"]
            #expect(keys.isSubset(of: allowed), "\(label): \(result.stdout)")
            if let offset = error?["offset"] { #expect(offset is Int, "\(label): offset \(offset)") }
            #expect(!result.stderr.isEmpty || result.status == 1, "\(label): nothing on stderr")
        }
    }

    @Test("usage errors exit 2 with one JSON error object; unknown subcommands too")
    func usage() throws {
        for arguments in [["tdx", "verify", "--json"], ["tdx", "nonsense", "--json"], ["sev", "measure", "--policy", "3", "--json"]] {
            let result = try CustosExecutable.run(arguments)
            #expect(result.status == 2, "\(arguments): \(result.stdout)\(result.stderr)")
            let object = try? JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any]
            let error = object?["error"] as? [String: Any]
            #expect(error?["code"] as? String == "usage", "\(arguments): \(result.stdout)")
            #expect(!result.stderr.isEmpty)
        }
    }

    /// Found by a review run against the binary: each case was a trap, a wrong status or a lost code.
    @Test("numbers, stdin, mirrors, URLs and config files keep the contract")
    func reviewedCases() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("custos-contract-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let garbage = directory.appendingPathComponent("garbage.bin")
        try Data([UInt8](repeating: 0xFF, count: 100)).write(to: garbage)
        let big = directory.appendingPathComponent("big.bin")
        try Data([UInt8](repeating: 0x41, count: (64 << 10) + 1)).write(to: big)
        let tdxArguments = [
            "tdx", "verify", "--quote", Self.tdx("quotes/q01_dcapqvl_tdx_v4.bin"), "--collateral",
            Self.tdx("collateral/c1_dcapqvl_2025-06_B0C06F"), "--json",
        ]
        let cases: [(arguments: [String], status: Int32, code: String)] = [
            // NaN and ∞ trapped converting the time for OpenSSL.
            (tdxArguments + ["--at", "nan"], 2, "usage"),
            (tdxArguments + ["--at", "inf"], 2, "usage"),
            // A garbage PDH is malformed evidence, as a short one is.
            (["sev", "verify-chain", "--pdh", garbage.path, "--cert-chain", garbage.path, "--json"], 1, "invalidValue"),
            // Collateral that does not load: 2 in every command that takes it.
            (["bench", "tdx-verify", "--quote", Self.tdx("quotes/q01_dcapqvl_tdx_v4.bin"), "--collateral", garbage.path, "--json"], 2, ""),
            (["certs", "install", "--from", directory.appendingPathComponent("none").path, "--json"], 2, "fileNotFound"),
            (
                ["tdx", "collateral", "fetch", "--fmspc", "00906ED50000", "--pccs", "not a url", "--out", directory.path, "--json"], 2,
                "usage"
            ),
            (
                ["tdx", "collateral", "fetch", "--fmspc", "00906ED50000", "--pccs", "ftp://x", "--out", directory.path, "--json"], 2,
                "usage"
            ),
            (["serve", "--config", directory.appendingPathComponent("none.yaml").path, "--json"], 2, "fileNotFound"),
            (["serve", "--config", directory.path, "--json"], 2, "notAFile"),
            (
                [
                    "launch", "tdx", "--name", "t", "--firmware", garbage.path, "--uki", garbage.path, "--db-cert", garbage.path, "--vcpus",
                    "4294967295", "--dry-run", "--json",
                ], 2, "usage"
            ),
            (["audit", "export", "--db", directory.appendingPathComponent("none.db").path, "--json"], 2, ""),
            (["audit", "tail", "--db", garbage.path, "--limit", "0", "--json"], 2, "usage"),
        ]
        for testCase in cases {
            let result = try CustosExecutable.run(testCase.arguments)
            let label = testCase.arguments.joined(separator: " ")
            #expect(result.status == testCase.status, "\(label): \(result.stdout) \(result.stderr)")
            let object = try? JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any]
            let error = object?["error"] as? [String: Any]
            #expect(error != nil, "\(label): one JSON error object, got \(result.stdout)")
            if !testCase.code.isEmpty { #expect(error?["code"] as? String == testCase.code, "\(label): \(result.stdout)") }
            #expect(!result.stderr.contains("Fatal error"), "\(label)")
        }
        // `sev secret` reads a secret with the key limit (64 KiB), not the kernel's 1 GiB.
        let secret = try CustosExecutable.run([
            "sev", "secret", "--tek", garbage.path, "--tik", garbage.path, "--measurement", String(repeating: "A", count: 64),
            "--secret", "luks-key:\(big.path)", "--json",
        ])
        #expect(secret.status == 2)
        #expect(secret.stdout.contains("tooLarge") || secret.stdout.contains("65536"), "\(secret.stdout)")
    }
}
