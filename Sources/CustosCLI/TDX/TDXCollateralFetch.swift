import ArgumentParser
public import AsyncHTTPClient
import CustosCrypto
import CustosTDX
public import Foundation
import NIOCore
import NIOHTTP1

/// `custos tdx collateral …`.
struct TDXCollateralCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "collateral", abstract: "TDX collateral (TCB Info, QE Identity, CRLs).", subcommands: [TDXCollateralFetch.self])
}

/// Downloads collateral from Intel PCS or a PCCS into a PCS-layout directory (spec §3).
public enum TDXCollateralFetcher {
    /// Intel PCS.
    public static let pcsBase = "https://api.trustedservices.intel.com"
    /// Intel's Root CA CRL (the CRL distribution point of the root).
    public static let intelRootCRL = "https://certificates.trustedservices.intel.com/IntelSGXRootCA.der"

    /// What was fetched.
    public struct Summary: Codable, Sendable {
        public let fmspc: String
        public let source: String
        public let fetchedAt: String
        public let tcbInfoIssueDate: String
        public let tcbInfoNextUpdate: String
        public let qeIdentityNextUpdate: String
        public let tcbEvaluationDataNumber: Int
        public let files: [String]
    }

    /// Why a fetch failed. The CLI exits 1 for every code (the collateral source, not the user, is at fault).
    public struct FetchError: Error, Sendable, Equatable, CustomStringConvertible {
        /// What went wrong.
        public struct Code: Sendable, Hashable, CustomStringConvertible {
            let name: String
            public var description: String { name }
            /// The request failed before a response (connection refused, timeout, TLS).
            public static let transport = Code(name: "transport")
            /// The server answered with a status other than 200.
            public static let httpStatus = Code(name: "httpStatus")
            /// An issuer-chain header is missing or not URL-encoded.
            public static let missingIssuerChain = Code(name: "missingIssuerChain")
            /// A body or header does not parse as the collateral part it should be.
            public static let malformedCollateral = Code(name: "malformedCollateral")
            /// The TCB Info served is for another FMSPC.
            public static let fmspcMismatch = Code(name: "fmspcMismatch")
            /// The output directory could not be written.
            public static let output = Code(name: "output")
        }
        public let code: Code
        public let message: String
        /// The HTTP status, for ``Code/httpStatus``.
        public let httpStatus: Int?

        init(_ code: Code, _ message: String, httpStatus: Int? = nil) {
            self.code = code
            self.message = message
            self.httpStatus = httpStatus
        }

        public var description: String { "collateral fetch failed (\(code)): \(message)" }
        /// Equal by code (as `CertificateError` is).
        public static func == (lhs: Self, rhs: Self) -> Bool { lhs.code == rhs.code }
    }

    /// Fetches the seven collateral parts for `fmspc` and writes them to `out` in PCS layout.
    ///
    /// Every part is downloaded and parsed before anything is written; the files are written into a staging folder
    /// next to `out` and moved into place, so a failed fetch leaves `out` as it was.
    /// - Parameters:
    ///   - base: PCS or PCCS base URL (paths `/sgx/certification/v4/…`, `/tdx/certification/v4/…` are appended).
    ///   - rootCRLURL: where the Root CA CRL is (PCS: Intel's CDP; PCCS: `<base>/sgx/certification/v4/rootcacrl`).
    ///   - ca: `platform` or `processor`.
    /// - Returns: a summary of what was fetched (also written to `fetch.json`).
    /// - Throws: ``FetchError``.
    public static func fetch(
        fmspc: String, base: String, rootCRLURL: String, ca: String, out: URL, client: HTTPClient
    ) async throws(FetchError) -> Summary {
        func get(_ url: String, chainHeaders: [String]) async throws(FetchError) -> (body: [UInt8], chain: String?) {
            var request = HTTPClientRequest(url: url)
            request.method = .GET
            let status: HTTPResponseStatus
            let headers: HTTPHeaders
            let body: ByteBuffer
            do {
                let response = try await client.execute(request, timeout: .seconds(30))
                status = response.status
                headers = response.headers
                body = try await response.body.collect(upTo: 16 << 20)
            } catch {
                throw FetchError(.transport, "GET \(url): \(error)")
            }
            guard status == .ok else {
                throw FetchError(.httpStatus, "GET \(url): HTTP \(status.code) \(status.reasonPhrase)", httpStatus: Int(status.code))
            }
            var chain: String? = nil
            for name in chainHeaders {
                if let value = headers.first(name: name) {
                    // Spec §3: the header is URL-encoded PEM (signer certificate, then the root).
                    guard let decoded = value.removingPercentEncoding, decoded.contains("-----BEGIN CERTIFICATE-----") else {
                        throw FetchError(.missingIssuerChain, "GET \(url): \(name) is not URL-encoded PEM")
                    }
                    chain = decoded
                    break
                }
            }
            if !chainHeaders.isEmpty, chain == nil {
                throw FetchError(.missingIssuerChain, "GET \(url): no \(chainHeaders.joined(separator: "/")) header")
            }
            return (Array(body.readableBytesView), chain)
        }
        let base = base.hasSuffix("/") ? String(base.dropLast()) : base
        let tcb = try await get(
            "\(base)/tdx/certification/v4/tcb?fmspc=\(fmspc)", chainHeaders: ["TCB-Info-Issuer-Chain", "SGX-TCB-Info-Issuer-Chain"])
        let qe = try await get("\(base)/tdx/certification/v4/qe/identity", chainHeaders: ["SGX-Enclave-Identity-Issuer-Chain"])
        let pckCRL = try await get("\(base)/sgx/certification/v4/pckcrl?ca=\(ca)&encoding=der", chainHeaders: ["SGX-PCK-CRL-Issuer-Chain"])
        let rootCRL = try await get(rootCRLURL, chainHeaders: [])
        // Normalize CRLs to DER (PCCS may serve hex or PEM, spec §3); the JSON bodies are stored verbatim.
        let collateral: Collateral
        let pckDER: [UInt8]
        let rootDER: [UInt8]
        do {
            pckDER = try CertificateRevocationList(anyEncoding: pckCRL.body).der
            rootDER = try CertificateRevocationList(anyEncoding: rootCRL.body).der
            collateral = try Collateral(
                tcbInfoBody: tcb.body, tcbInfoIssuerChain: tcb.chain ?? "", qeIdentityBody: qe.body,
                qeIdentityIssuerChain: qe.chain ?? "", pckCRL: pckDER, pckCRLIssuerChain: pckCRL.chain ?? "", rootCACRL: rootDER)
        } catch let error as CryptoError {
            throw FetchError(.malformedCollateral, error.reason)
        } catch let error as TDXError {
            throw FetchError(.malformedCollateral, error.reason)
        } catch {
            throw FetchError(.malformedCollateral, "\(error)")
        }
        guard Hex.encode(collateral.tcbInfo.fmspc).uppercased() == fmspc.uppercased() else {
            throw FetchError(.fmspcMismatch, "the TCB Info served is for FMSPC \(Hex.encode(collateral.tcbInfo.fmspc)), not \(fmspc)")
        }
        let iso = ISO8601DateFormatter()
        let files: [(String, [UInt8])] = [
            ("tcb_info.json", tcb.body), ("tcb_info_issuer_chain.pem", Array((tcb.chain ?? "").utf8)), ("qe_identity.json", qe.body),
            ("qe_identity_issuer_chain.pem", Array((qe.chain ?? "").utf8)), ("pck_crl.der", pckDER),
            ("pck_crl_issuer_chain.pem", Array((pckCRL.chain ?? "").utf8)), ("root_ca_crl.der", rootDER),
        ]
        let summary = Summary(
            fmspc: fmspc.uppercased(), source: base, fetchedAt: iso.string(from: Date()),
            tcbInfoIssueDate: iso.string(from: collateral.tcbInfo.issueDate),
            tcbInfoNextUpdate: iso.string(from: collateral.tcbInfo.nextUpdate),
            qeIdentityNextUpdate: iso.string(from: collateral.qeIdentity.nextUpdate),
            tcbEvaluationDataNumber: collateral.tcbInfo.tcbEvaluationDataNumber, files: files.map(\.0))
        do {
            try writeAtomically(files + [("fetch.json", Array(try Output.encoder().encode(summary)))], to: out)
        } catch {
            throw FetchError(.output, "\(out.path): \(error)")
        }
        return summary
    }

    /// Writes every file into a staging folder beside `out`, then moves them into `out` (created if needed).
    private static func writeAtomically(_ files: [(String, [UInt8])], to out: URL) throws {
        let manager = FileManager.default
        let parent = out.deletingLastPathComponent()
        try manager.createDirectory(at: parent, withIntermediateDirectories: true)
        let staging = parent.appendingPathComponent(".\(out.lastPathComponent).fetch-\(UUID().uuidString)")
        try manager.createDirectory(at: staging, withIntermediateDirectories: false)
        defer { try? manager.removeItem(at: staging) }
        for (name, bytes) in files { try Data(bytes).write(to: staging.appendingPathComponent(name)) }
        if !manager.fileExists(atPath: out.path) {
            try manager.moveItem(at: staging, to: out)
            return
        }
        for (name, _) in files {
            let target = out.appendingPathComponent(name)
            if manager.fileExists(atPath: target.path) {
                _ = try manager.replaceItemAt(target, withItemAt: staging.appendingPathComponent(name))
            } else {
                try manager.moveItem(at: staging.appendingPathComponent(name), to: target)
            }
        }
    }
}

struct TDXCollateralFetch: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fetch", abstract: "Download TDX collateral for an FMSPC from Intel PCS or a PCCS into a PCS-layout directory.")

    @Option(name: .long, help: "The platform's FMSPC (12 hex digits).") var fmspc: String
    @Option(name: .long, help: "A PCCS base URL (e.g. https://pccs.local:8081).") var pccs: String?
    @Flag(name: .long, help: "Use Intel PCS (api.trustedservices.intel.com).") var pcs = false
    @Option(name: .long, help: "PCK CA type: platform or processor.") var ca = "platform"
    @Option(name: .long, help: "Root CA CRL URL (default: Intel's CDP for --pcs, <pccs>/sgx/certification/v4/rootcacrl for --pccs).")
    var rootCrlUrl: String?
    @Option(name: .long, help: "Output directory.") var out: String
    @OptionGroup var global: GlobalOptions

    func validate() throws {
        guard fmspc.utf8.count == 12, (try? Hex.decode(fmspc)) != nil else { throw ValidationError("--fmspc must be 12 hex digits") }
        guard (pccs != nil) != pcs else { throw ValidationError("give exactly one of --pccs URL or --pcs") }
        guard ca == "platform" || ca == "processor" else { throw ValidationError("--ca must be platform or processor") }
    }

    func run() async throws {
        let base = pccs ?? TDXCollateralFetcher.pcsBase
        let rootURL = rootCrlUrl ?? (pcs ? TDXCollateralFetcher.intelRootCRL : "\(base)/sgx/certification/v4/rootcacrl")
        let client = HTTPClient(eventLoopGroupProvider: .singleton)
        let summary: TDXCollateralFetcher.Summary
        do {
            summary = try await TDXCollateralFetcher.fetch(
                fmspc: fmspc, base: base, rootCRLURL: rootURL, ca: ca, out: URL(fileURLWithPath: out), client: client)
        } catch {
            try? await client.shutdown()
            throw error
        }
        try await client.shutdown()
        if global.json {
            try Output.printJSON(summary)
        } else {
            print("fetched TDX collateral for FMSPC \(summary.fmspc) from \(summary.source) into \(out)")
            print(
                "  TCB Info \(summary.tcbInfoIssueDate) … \(summary.tcbInfoNextUpdate) (eval \(summary.tcbEvaluationDataNumber)); QE Identity until \(summary.qeIdentityNextUpdate)"
            )
        }
    }
}
