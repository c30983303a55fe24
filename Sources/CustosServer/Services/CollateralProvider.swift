public import CustosCrypto
public import CustosTDX
public import Foundation
import Synchronization

/// Where the service gets TDX collateral for a platform: its FMSPC and the PCK CA that issued its PCK certificate
/// (the collateral's PCK CRL must be that CA's).
public protocol CollateralProvider: Sendable {
    /// The collateral for `platform`, or a typed reason why there is none.
    func collateral(for platform: PCKPlatform, now: Date) async throws(CollateralUnavailable) -> Collateral
    /// What `/readyz` reports: nil when ready.
    func readinessProblem() -> String?
}

extension CollateralProvider {
    /// The collateral for `fmspc` (6 bytes) of a platform whose PCK certificate the PCK Platform CA issued.
    public func collateral(fmspc: [UInt8], now: Date) async throws(CollateralUnavailable) -> Collateral {
        try await collateral(for: PCKPlatform(fmspc: fmspc, ca: .platform), now: now)
    }
}

extension PCKCertificateAuthority {
    /// "PCK Platform CA" / "PCK Processor CA", for messages.
    var displayName: String { self == .platform ? "PCK Platform CA" : "PCK Processor CA" }
}

/// Why no collateral could be found (answered as 503 `cannot-decide`: the evidence may be fine).
public struct CollateralUnavailable: Error, Sendable, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Collateral from a directory, no network: `DIR/<FMSPC>/` in PCS layout (the files `custos tdx collateral fetch`
/// writes), `DIR/<FMSPC>-processor/` for a platform whose PCK certificate the PCK Processor CA issued, or `DIR/` itself
/// in PCS layout for a single platform. A directory is used only for its FMSPC and for the CA its PCK CRL is from.
/// Parsed collateral is kept in memory and re-read after `refreshInterval` (so a refreshed directory is picked up
/// without a restart); the signature checks are cached by ``QuoteVerifier``'s ``VerificationCache``.
public final class CollateralDirectory: CollateralProvider {
    public let root: URL
    public let refreshInterval: TimeInterval
    private let cache = Mutex<[String: (collateral: Collateral, loadedAt: Date)]>([:])
    /// The largest collateral file read (TCB Info of real platforms is ~10 KiB; CRLs a few KiB).
    static let maximumFileBytes = 4 << 20

    public static let pcsFiles = [
        "tcb_info.json", "tcb_info_issuer_chain.pem", "qe_identity.json", "qe_identity_issuer_chain.pem", "pck_crl.der",
        "pck_crl_issuer_chain.pem", "root_ca_crl.der",
    ]

    public init(root: URL, refreshInterval: TimeInterval = 60) {
        self.root = root
        self.refreshInterval = refreshInterval
    }

    public func collateral(for platform: PCKPlatform, now: Date) async throws(CollateralUnavailable) -> Collateral {
        let key = platform.cacheKey
        if let hit = cache.withLock({ $0[key] }), now.timeIntervalSince(hit.loadedAt) < refreshInterval { return hit.collateral }
        let fmspc = Hex.encode(platform.fmspc).uppercased()
        var candidates: [URL] = []
        for name in [key, key.lowercased(), fmspc, fmspc.lowercased()] {
            let url = root.appendingPathComponent(name)
            if !candidates.contains(url) { candidates.append(url) }
        }
        candidates.append(root)
        var skipped: [String] = []
        for directory in candidates where FileManager.default.fileExists(atPath: directory.appendingPathComponent("tcb_info.json").path) {
            let collateral: Collateral
            do { collateral = try Self.load(directory) } catch {
                // The platform's own directory must load; a fallback (the bare FMSPC's, the single-platform root) that
                // does not is skipped: it may be another CA's, which this platform could not use anyway.
                if [key, key.lowercased()].contains(where: { root.appendingPathComponent($0) == directory }) { throw error }
                skipped.append("\(directory.path) does not load (\(error))")
                continue
            }
            // The single-platform layout must still be for this FMSPC, and every layout for the PCK certificate's CA.
            guard collateral.tcbInfo.fmspc == platform.fmspc else { continue }
            guard (collateral.pckCRLAuthority ?? .platform) == platform.ca else {
                skipped.append("\(directory.path) holds the \((collateral.pckCRLAuthority ?? .platform).displayName) CRL")
                continue
            }
            cache.withLock { $0[key] = (collateral, now) }
            return collateral
        }
        let fetch =
            "custos tdx collateral fetch --fmspc \(fmspc)\(platform.ca == .platform ? "" : " --ca \(platform.ca.rawValue)") --pcs|--pccs URL"
        throw CollateralUnavailable(
            "no collateral for FMSPC \(fmspc) (\(platform.ca.displayName)) in \(root.path)"
                + (skipped.isEmpty ? "" : "; \(skipped.joined(separator: "; "))")
                + " (run `\(fetch) --out \(root.appendingPathComponent(key).path)`)")
    }

    /// Forgets the parsed collateral of `platform`, so the next request re-reads its files.
    public func invalidate(_ platform: PCKPlatform) {
        cache.withLock { _ = $0.removeValue(forKey: platform.cacheKey) }
    }

    public func readinessProblem() -> String? {
        FileManager.default.fileExists(atPath: root.path) ? nil : "the collateral directory \(root.path) does not exist"
    }

    static func load(_ directory: URL) throws(CollateralUnavailable) -> Collateral {
        func file(_ name: String) throws(CollateralUnavailable) -> [UInt8] {
            let url = directory.appendingPathComponent(name)
            guard let data = FileManager.default.contents(atPath: url.path) else {
                throw CollateralUnavailable("\(url.path) is missing or unreadable")
            }
            guard data.count <= maximumFileBytes else {
                throw CollateralUnavailable("\(url.path) is larger than \(maximumFileBytes) bytes")
            }
            return Array(data)
        }
        func text(_ name: String) throws(CollateralUnavailable) -> String { String(decoding: try file(name), as: UTF8.self) }
        do {
            return try Collateral(
                tcbInfoBody: file("tcb_info.json"), tcbInfoIssuerChain: text("tcb_info_issuer_chain.pem"),
                qeIdentityBody: file("qe_identity.json"), qeIdentityIssuerChain: text("qe_identity_issuer_chain.pem"),
                pckCRL: file("pck_crl.der"), pckCRLIssuerChain: text("pck_crl_issuer_chain.pem"), rootCACRL: file("root_ca_crl.der"))
        } catch let error as CollateralUnavailable { throw error } catch {
            throw CollateralUnavailable("\(directory.path): \(error)")
        }
    }
}

/// Collateral held in memory (tests and benchmarks with generated quotes), by FMSPC and the CA of its PCK CRL.
public final class InMemoryCollateral: CollateralProvider {
    private let byPlatform: [String: Collateral]
    public init(_ collaterals: [Collateral]) {
        var map: [String: Collateral] = [:]
        for collateral in collaterals {
            map[PCKPlatform(fmspc: collateral.tcbInfo.fmspc, ca: collateral.pckCRLAuthority ?? .platform).cacheKey] = collateral
        }
        self.byPlatform = map
    }
    public func collateral(for platform: PCKPlatform, now: Date) async throws(CollateralUnavailable) -> Collateral {
        guard let collateral = byPlatform[platform.cacheKey] else {
            throw CollateralUnavailable("no collateral for FMSPC \(Hex.encode(platform.fmspc).uppercased()) (\(platform.ca.displayName))")
        }
        return collateral
    }
    public func readinessProblem() -> String? { nil }
}
