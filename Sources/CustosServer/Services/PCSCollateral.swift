public import AsyncHTTPClient
public import CustosCrypto
public import CustosTDX
public import Foundation
public import Logging
import NIOCore
import NIOHTTP1
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Downloads collateral from Intel PCS or a PCCS into a PCS-layout directory (spec §3).
public enum TDXCollateralFetcher {
    /// Intel PCS.
    public static let pcsBase = "https://api.trustedservices.intel.com"
    /// Intel's Root CA CRL (the CRL distribution point of the root).
    public static let intelRootCRL = "https://certificates.trustedservices.intel.com/IntelSGXRootCA.der"

    /// What was fetched.
    public struct Summary: Codable, Sendable {
        public let fmspc: String
        /// The PCK CA whose CRL was fetched (`platform` or `processor`; absent in fetches of earlier releases).
        public let ca: String?
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
            /// The collateral parses but the caller's check refused it (signatures, dates, a downgrade).
            public static let refused = Code(name: "refused")
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
    ///   - check: runs on the parsed collateral before anything is written (the service verifies signatures and dates
    ///     against its trust anchor and refuses a downgrade); what it throws becomes ``Code/refused``.
    /// - Returns: a summary of what was fetched (also written to `fetch.json`).
    /// - Throws: ``FetchError``.
    public static func fetch(
        fmspc: String, base: String, rootCRLURL: String, ca: String, out: URL, client: HTTPClient,
        check: (@Sendable (Collateral) throws -> Void)? = nil
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
        // The PCK CRL must be the requested CA's: a PCK certificate is checked against its own issuer's CRL only.
        // A CA named neither way counts as the Platform CA, as the collateral directory reads it.
        let served = collateral.pckCRLAuthority ?? .platform
        guard served.rawValue == ca else {
            throw FetchError(.malformedCollateral, "the PCK CRL served for ca=\(ca) is the \(served.displayName)'s")
        }
        if let check {
            do { try check(collateral) } catch { throw FetchError(.refused, "the collateral from \(base) is refused: \(error)") }
        }
        let iso = ISO8601DateFormatter()
        let files: [(String, [UInt8])] = [
            ("tcb_info.json", tcb.body), ("tcb_info_issuer_chain.pem", Array((tcb.chain ?? "").utf8)), ("qe_identity.json", qe.body),
            ("qe_identity_issuer_chain.pem", Array((qe.chain ?? "").utf8)), ("pck_crl.der", pckDER),
            ("pck_crl_issuer_chain.pem", Array((pckCRL.chain ?? "").utf8)), ("root_ca_crl.der", rootDER),
        ]
        let summary = Summary(
            fmspc: fmspc.uppercased(), ca: ca, source: base, fetchedAt: iso.string(from: Date()),
            tcbInfoIssueDate: iso.string(from: collateral.tcbInfo.issueDate),
            tcbInfoNextUpdate: iso.string(from: collateral.tcbInfo.nextUpdate),
            qeIdentityNextUpdate: iso.string(from: collateral.qeIdentity.nextUpdate),
            tcbEvaluationDataNumber: collateral.tcbInfo.tcbEvaluationDataNumber, files: files.map(\.0))
        do {
            try writeAtomically(files + [("fetch.json", Array(try summaryEncoder().encode(summary)))], to: out)
        } catch {
            throw FetchError(.output, "\(out.path): \(error)")
        }
        return summary
    }

    static func summaryEncoder() -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return encoder
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
        // rename(2) replaces each file atomically (Foundation's replaceItemAt on Linux lost files in place).
        for (name, _) in files {
            let source = staging.appendingPathComponent(name).path
            let target = out.appendingPathComponent(name).path
            guard rename(source, target) == 0 else {
                throw CocoaError(
                    .fileWriteUnknown,
                    userInfo: [NSFilePathErrorKey: target, NSUnderlyingErrorKey: POSIXError(.init(rawValue: errno) ?? .EIO)])
            }
        }
    }
}

/// Collateral from Intel PCS or a PCCS with an on-disk cache (`DATA/collateral/<FMSPC>/`, the PCS layout that
/// `custos tdx collateral fetch` writes; `DATA/collateral/<FMSPC>-processor/` for platforms whose PCK certificate the
/// PCK Processor CA issued, fetched with `pckcrl?ca=processor`), the service's default source.
///
/// A platform's collateral is fetched on its first attestation and again once any part of it — TCB Info, QE Identity,
/// either CRL, a certificate of the issuer chains — has expired or is within ``refreshMargin`` of it: concurrent
/// attestations of one platform share one fetch, and after a failed fetch (or one whose collateral is no fresher) the
/// next attempt waits ``retryInterval`` (so a PCS outage is not hammered by every guest). With a trust anchor, what is
/// fetched is verified (signatures, chains, dates) and refused if it is older than the cache (a lower TCB evaluation
/// data number or an earlier issue date) before it replaces anything. When a refresh fails, the cached collateral is
/// still used; if it has expired, the verifier refuses it and the attestation is answered 503 (the service cannot
/// decide; the evidence may be fine), as it is without any cache.
public final class PCSCollateralProvider: CollateralProvider {
    /// The on-disk cache.
    public let cache: CollateralDirectory
    /// PCS or PCCS base URL.
    public let base: String
    /// Where the Root CA CRL is fetched from.
    public let rootCRLURL: String
    /// How long before `nextUpdate` a refresh starts.
    public let refreshMargin: TimeInterval
    /// How long after a failed fetch the next one may start.
    public let retryInterval: TimeInterval
    /// Verifies fetched collateral before it is cached (nil: parsed only, as `custos tdx collateral fetch` does).
    public let trustedRoot: Certificate?
    let client: HTTPClient
    let logger: Logger
    private let state = Mutex<State>(State())

    private struct State {
        var inFlight: [String: Task<Result<Void, TDXCollateralFetcher.FetchError>, Never>] = [:]
        var lastFailure: [String: (at: Date, error: TDXCollateralFetcher.FetchError)] = [:]
        var fetches = 0
    }

    /// - Parameters:
    ///   - base: PCS (``ServerConfiguration/intelPCS``) or a PCCS base URL.
    ///   - rootCRLURL: default: Intel's CRL distribution point for PCS, `<base>/sgx/certification/v4/rootcacrl` for a
    ///     PCCS.
    public init(
        cacheDirectory: URL, base: String, rootCRLURL: String? = nil, trustedRoot: Certificate? = nil, client: HTTPClient = .shared,
        refreshMargin: TimeInterval = 3600, retryInterval: TimeInterval = 30, logger: Logger
    ) {
        self.trustedRoot = trustedRoot
        self.cache = CollateralDirectory(root: cacheDirectory, refreshInterval: 60)
        let trimmed = base.hasSuffix("/") ? String(base.dropLast()) : base
        self.base = trimmed
        self.rootCRLURL =
            rootCRLURL
            ?? (trimmed == ServerConfiguration.intelPCS
                ? TDXCollateralFetcher.intelRootCRL : "\(trimmed)/sgx/certification/v4/rootcacrl")
        self.client = client
        self.refreshMargin = refreshMargin
        self.retryInterval = retryInterval
        self.logger = logger
    }

    /// Platforms fetched at the same time at most; an attestation of another platform meanwhile is answered 503.
    static let maximumConcurrentFetches = 8
    /// Failed platforms remembered for the back-off at most.
    static let maximumRememberedFailures = 1024

    /// Fetches started so far (tests and metrics).
    public var fetchCount: Int { state.withLock { $0.fetches } }

    public func collateral(for platform: PCKPlatform, now: Date) async throws(CollateralUnavailable) -> Collateral {
        let key = platform.cacheKey
        let cached: Collateral?
        do { cached = try await cache.collateral(for: platform, now: now) } catch { cached = nil }
        if let cached, now < Self.earliestNextUpdate(cached).addingTimeInterval(-refreshMargin) { return cached }
        switch await fetch(key, platform: platform, now: now, replacing: cached) {
        case .success:
            do { return try await cache.collateral(for: platform, now: now) } catch {
                if let cached { return cached }
                throw error
            }
        case .failure(let error):
            // A fetch that wrote collateral still within the margin reports a failure (for the back-off): use it.
            if let current = try? await cache.collateral(for: platform, now: now) { return current }
            if let cached {
                logger.warning(
                    "collateral refresh failed; using the cached collateral", metadata: ["fmspc": "\(key)", "error": "\(error)"])
                return cached
            }
            throw CollateralUnavailable(
                "no collateral for FMSPC \(Hex.encode(platform.fmspc).uppercased()) (\(platform.ca.displayName)): \(error)")
        }
    }

    public func readinessProblem() -> String? { nil }

    /// Records a failure for the back-off in `state` (bounded: failures older than the retry interval no longer matter).
    private static func remember(
        _ error: TDXCollateralFetcher.FetchError, for key: String, at now: Date, retryInterval: TimeInterval, in state: inout State
    ) {
        if state.lastFailure.count >= Self.maximumRememberedFailures {
            state.lastFailure = state.lastFailure.filter { now.timeIntervalSince($0.value.at) < retryInterval }
            if state.lastFailure.count >= Self.maximumRememberedFailures { state.lastFailure.removeAll() }
        }
        state.lastFailure[key] = (now, error)
    }

    /// When the first part of the collateral expires: the TCB Info's and QE Identity's `nextUpdate`, both CRLs'
    /// `nextUpdate` and the `notAfter` of every certificate of the issuer chains (the verifier refuses each past it).
    public static func earliestNextUpdate(_ collateral: Collateral) -> Date {
        var dates = [
            collateral.tcbInfo.nextUpdate, collateral.qeIdentity.nextUpdate, collateral.pckCRL.nextUpdate ?? .distantPast,
            collateral.rootCACRL.nextUpdate ?? .distantPast,
        ]
        for chain in [collateral.tcbInfoIssuerChain, collateral.qeIdentityIssuerChain, collateral.pckCRLIssuerChain] {
            dates += chain.map(\.notAfter)
        }
        return dates.min() ?? .distantPast
    }

    /// The check a fetch runs before it writes: the collateral verifies against the trust anchor now, and is not
    /// older than what it replaces.
    static func check(_ fetched: Collateral, replacing cached: Collateral?, root: Certificate?, now: Date) throws {
        if let root { _ = try QuoteVerifier(trustedRoot: root).verifyCollateral(fetched, at: now) }
        guard let cached else { return }
        let (new, old) = (fetched.tcbInfo, cached.tcbInfo)
        guard new.tcbEvaluationDataNumber >= old.tcbEvaluationDataNumber, new.issueDate >= old.issueDate else {
            throw TDXCollateralFetcher.FetchError(
                .refused,
                "TCB Info \(new.tcbEvaluationDataNumber) issued \(new.issueDate) is older than the cached \(old.tcbEvaluationDataNumber) issued \(old.issueDate)"
            )
        }
        // Every other part too: an older CRL could un-revoke a PCK certificate.
        for (name, fresh, current) in [
            ("QE Identity", fetched.qeIdentity.issueDate, cached.qeIdentity.issueDate),
            ("PCK CRL", fetched.pckCRL.thisUpdate, cached.pckCRL.thisUpdate),
            ("Root CA CRL", fetched.rootCACRL.thisUpdate, cached.rootCACRL.thisUpdate),
        ] where fresh < current {
            throw TDXCollateralFetcher.FetchError(.refused, "the \(name) issued \(fresh) is older than the cached one (\(current))")
        }
    }

    /// One fetch per platform (FMSPC and PCK CA) at a time; none within `retryInterval` of a failure.
    /// The task writes what it fetched into the cache and reads it back: collateral that is itself within the refresh
    /// margin is kept but reported as a failure, so that the back-off applies (or every attestation would fetch again).
    private func fetch(
        _ key: String, platform: PCKPlatform, now: Date, replacing cached: Collateral?
    ) async -> Result<Void, TDXCollateralFetcher.FetchError> {
        let task = state.withLock { state -> Task<Result<Void, TDXCollateralFetcher.FetchError>, Never>? in
            if let running = state.inFlight[key] { return running }
            // The FMSPC comes from a PCK certificate that is not verified yet (its CRL is part of what is fetched):
            // a flood of quotes with made-up FMSPCs must not open unbounded fetches.
            guard state.inFlight.count < Self.maximumConcurrentFetches else { return nil }
            if let failure = state.lastFailure[key], now.timeIntervalSince(failure.at) < retryInterval, now >= failure.at {
                return nil
            }
            state.fetches += 1
            let directory = cache.root.appendingPathComponent(key)
            let (base, rootCRLURL, client, root, cache, margin) = (
                self.base, self.rootCRLURL, self.client, self.trustedRoot, self.cache, self.refreshMargin
            )
            let task = Task { () -> Result<Void, TDXCollateralFetcher.FetchError> in
                do throws(TDXCollateralFetcher.FetchError) {
                    _ = try await TDXCollateralFetcher.fetch(
                        fmspc: Hex.encode(platform.fmspc).uppercased(), base: base, rootCRLURL: rootCRLURL, ca: platform.ca.rawValue,
                        out: directory, client: client
                    ) { fetched in try Self.check(fetched, replacing: cached, root: root, now: now) }
                } catch { return .failure(error) }
                cache.invalidate(platform)
                let fresh: Collateral
                do { fresh = try await cache.collateral(for: platform, now: now) } catch {
                    return .failure(.init(.output, "the fetched collateral cannot be read back: \(error)"))
                }
                if now >= Self.earliestNextUpdate(fresh).addingTimeInterval(-margin) {
                    return .failure(.init(.refused, "the source's collateral expires within the refresh margin"))
                }
                return .success(())
            }
            state.inFlight[key] = task
            return task
        }
        guard let task else {
            let error = state.withLock { $0.lastFailure[key]?.error }
            return .failure(
                error ?? TDXCollateralFetcher.FetchError(.transport, "too many collateral fetches in progress; retrying later"))
        }
        let result = await task.value
        // Under the lock that ends the fetch: no other attestation can start a fetch between the two.
        let interval = retryInterval
        state.withLock { state in
            state.inFlight[key] = nil
            switch result {
            case .success: state.lastFailure[key] = nil
            case .failure(let error): Self.remember(error, for: key, at: now, retryInterval: interval, in: &state)
            }
        }
        if case .success = result { logger.info("fetched TDX collateral", metadata: ["fmspc": "\(key)", "source": "\(base)"]) }
        return result
    }
}
