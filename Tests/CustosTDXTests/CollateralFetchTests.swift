import ArgumentParser
import AsyncHTTPClient
import CustosCrypto
import CustosServer
import CustosTDX
import CustosTestSupport
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import Testing

@testable import CustosCLI

/// The PCCS routes (PCS v4 paths, spec §3) for a recorded PCS-layout collateral directory.
func pccsRoutes(directory: String, fmspc: String) throws -> [String: CannedResponse] {
    func file(_ name: String) throws -> [UInt8] { try TestData.bytes("tdx/\(directory)/\(name)") }
    func header(_ name: String) throws -> String { pcsURLEncode(String(decoding: try file(name), as: UTF8.self)) }
    return [
        "/tdx/certification/v4/tcb?fmspc=\(fmspc)": CannedResponse(
            headers: [("TCB-Info-Issuer-Chain", try header("tcb_info_issuer_chain.pem")), ("Content-Type", "application/json")],
            body: try file("tcb_info.json")),
        "/tdx/certification/v4/qe/identity": CannedResponse(
            headers: [("SGX-Enclave-Identity-Issuer-Chain", try header("qe_identity_issuer_chain.pem"))], body: try file("qe_identity.json")
        ),
        "/sgx/certification/v4/pckcrl?ca=platform&encoding=der": CannedResponse(
            headers: [("SGX-PCK-CRL-Issuer-Chain", try header("pck_crl_issuer_chain.pem"))], body: try file("pck_crl.der")),
        // A PCCS serves the Root CA CRL as a hex string of the DER (spec §3).
        "/sgx/certification/v4/rootcacrl": CannedResponse(body: Array(Hex.encode(try file("root_ca_crl.der")).utf8)),
    ]
}

// MARK: - Tests

@Suite(Requirement.testData, .timeLimit(.minutes(10)))
struct TDXCollateralFetchTests {
    /// Runs the CLI as `main` does and returns its exit code.
    func run(_ arguments: [String]) async -> Int32 {
        do {
            var command = try CustosCommand.parseAsRoot(arguments)
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
            return 0
        } catch let error as CLIError {
            return error.exitCode
        } catch {
            return CustosCommand.exitCode(for: error).rawValue
        }
    }

    func temporaryFolder() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("custos-fetch-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    /// The pairs whose collateral is recorded in full PCS layout (the ones a PCCS could have served).
    static var pcsPairs: [ExpectedPair] {
        Fixtures.pairs.filter { pair in
            TDXCollateralLoader.pcsFiles.allSatisfy {
                FileManager.default.fileExists(atPath: TestData.url("tdx/\(pair.collateralDirectory)/\($0)").path)
            }
        }
    }

    @Test("collateral fetch from a local PCCS writes the recorded files and verifies like them", arguments: pcsPairs)
    func fetchMatchesRecording(pair: ExpectedPair) async throws {
        let server = try await CannedHTTPServer.start(routes: try pccsRoutes(directory: pair.collateralDirectory, fmspc: pair.parsed.fmspc))
        let folder = try temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let out = folder.appendingPathComponent("collateral")
        let code = await run([
            "tdx", "collateral", "fetch", "--pccs", server.base, "--fmspc", pair.parsed.fmspc, "--out", out.path, "--json",
        ])
        await server.stop()
        #expect(code == 0)

        // Every part byte-identical to the recording: JSON bodies verbatim, issuer chains URL-decoded, CRLs as DER
        // (the Root CA CRL came as hex).
        for name in TDXCollateralLoader.pcsFiles {
            let fetched = try [UInt8](Data(contentsOf: out.appendingPathComponent(name)))
            #expect(fetched == (try TestData.bytes("tdx/\(pair.collateralDirectory)/\(name)")), "\(name)")
        }
        let summary = try JSONDecoder().decode(
            TDXCollateralFetcher.Summary.self, from: Data(contentsOf: out.appendingPathComponent("fetch.json")))
        #expect(summary.fmspc == pair.parsed.fmspc)

        // The fetched directory verifies the quote as dcap-qvl verified it with the recorded collateral.
        let quote = try Fixtures.quote(pair.quote)
        let fetched = try TDXCollateralLoader.load(path: out.path)
        let recorded = try Fixtures.collateral(pair.collateralDirectory)
        #expect(fetched.contentHash == recorded.contentHash)
        let verifier = try Fixtures.verifier()
        let result = verifier.verify(quote: quote, collateral: fetched, at: pair.time)
        let reference = verifier.verify(quote: quote, collateral: recorded, at: pair.time)
        if pair.valid.result == "accepted" {
            let verified = try #require(result.verifiedQuote)
            #expect(verified.tcbStatus.rawValue == pair.valid.status)
        } else {
            #expect(result.verifiedQuote == nil)
            #expect(result.error?.code == reference.error?.code)
        }
    }

    /// Faults a PCCS can serve; each must fail with a typed error, exit 1 and leave the output untouched.
    enum Fault: String, CaseIterable, Sendable {
        case unknownFMSPC, qeIdentityServerError, garbageTCBInfo, missingTCBIssuerChain, garbageIssuerChain, garbagePCKCRL,
            tcbInfoForOtherFMSPC, truncatedQEIdentity, connectionRefused, otherCAsCRL

        var expectedCode: TDXCollateralFetcher.FetchError.Code {
            switch self {
            case .unknownFMSPC, .qeIdentityServerError: .httpStatus
            case .garbageTCBInfo, .garbagePCKCRL, .truncatedQEIdentity, .garbageIssuerChain, .otherCAsCRL: .malformedCollateral
            case .missingTCBIssuerChain: .missingIssuerChain
            case .tcbInfoForOtherFMSPC: .fmspcMismatch
            case .connectionRefused: .transport
            }
        }
    }

    @Test("collateral fetch failures are typed, exit 1 and write nothing", arguments: Fault.allCases)
    func fetchFailure(fault: Fault) async throws {
        let c1 = "collateral/c1_dcapqvl_2025-06_B0C06F"
        var fmspc = "B0C06F000000"
        var routes = try pccsRoutes(directory: c1, fmspc: fmspc)
        let tcbPath = "/tdx/certification/v4/tcb?fmspc=\(fmspc)"
        var ca = "platform"
        switch fault {
        case .unknownFMSPC: fmspc = "00906ED50000"
        case .qeIdentityServerError:
            routes["/tdx/certification/v4/qe/identity"] = CannedResponse(status: .internalServerError, body: Array("boom".utf8))
        case .garbageTCBInfo: routes[tcbPath]?.body = Array("<html>maintenance</html>".utf8)
        case .missingTCBIssuerChain: routes[tcbPath]?.headers = []
        case .garbageIssuerChain:
            routes[tcbPath]?.headers = [
                ("TCB-Info-Issuer-Chain", pcsURLEncode("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"))
            ]
        case .garbagePCKCRL: routes["/sgx/certification/v4/pckcrl?ca=platform&encoding=der"]?.body = [0x30, 0x82, 0x01]
        case .tcbInfoForOtherFMSPC: routes[tcbPath]?.body = try TestData.bytes("tdx/collateral/c4_gotdx_2023-06_50806F/tcb_info.json")
        case .truncatedQEIdentity: routes["/tdx/certification/v4/qe/identity"]?.body.removeLast(40)
        case .connectionRefused: break
        case .otherCAsCRL:
            // Asked for the Processor CA's CRL, the PCCS serves the Platform CA's (Intel's real one).
            ca = "processor"
            routes["/sgx/certification/v4/pckcrl?ca=processor&encoding=der"] =
                routes["/sgx/certification/v4/pckcrl?ca=platform&encoding=der"]
        }
        let server = try await CannedHTTPServer.start(routes: routes)
        let base = server.base
        if fault == .connectionRefused { await server.stop() }

        let folder = try temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let out = folder.appendingPathComponent("collateral")

        // The library function: a typed error with the expected code.
        let client = HTTPClient(eventLoopGroupProvider: .singleton)
        let thrown = await #expect(throws: TDXCollateralFetcher.FetchError.self) {
            _ = try await TDXCollateralFetcher.fetch(
                fmspc: fmspc, base: base, rootCRLURL: base + "/sgx/certification/v4/rootcacrl", ca: ca, out: out, client: client)
        }
        try await client.shutdown()
        #expect(thrown?.code == fault.expectedCode, "\(thrown.map { "\($0)" } ?? "no error")")
        if fault == .unknownFMSPC { #expect(thrown?.httpStatus == 404) }
        #expect(!FileManager.default.fileExists(atPath: out.path))

        // The CLI: exit 1, and an existing output directory keeps its previous content byte for byte.
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        let previous = Array("previous collateral".utf8)
        try Data(previous).write(to: out.appendingPathComponent("tcb_info.json"))
        let code = await run(["tdx", "collateral", "fetch", "--pccs", base, "--fmspc", fmspc, "--ca", ca, "--out", out.path])
        await server.stop()
        #expect(code == 1)
        #expect(try FileManager.default.contentsOfDirectory(atPath: out.path) == ["tcb_info.json"])
        #expect(try [UInt8](Data(contentsOf: out.appendingPathComponent("tcb_info.json"))) == previous)
        // No staging folder is left behind.
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder.path) == ["collateral"])
    }
}
