internal import CustosCrypto
public import Synchronization

/// Remembers verified collateral (by content hash) and checked PCK chains (by chain bytes and collateral), so that
/// verifying many quotes re-verifies nothing that has not changed. Entries are used only inside their validity window
/// (never past a nextUpdate/notAfter) and only for the same trust anchor.
///
/// Thread-safe (a `Mutex`); share one instance between verifiers.
public final class VerificationCache: Sendable {
    private struct State {
        var collateral: [[UInt8]: VerifiedCollateral] = [:]
        var pcks: [[UInt8]: QuoteVerifier.CheckedPCK] = [:]
        var attestationKeys: [[UInt8]: ECPublicKey] = [:]
        var platforms: [[UInt8]: PCKPlatform] = [:]
        var qeReportSignatures: Set<[UInt8]> = []
    }
    private let state = Mutex(State())
    /// Maximum entries per table; the table is emptied when exceeded (collateral changes monthly, so this is rare).
    public let capacity: Int

    public init(capacity: Int = 4096) { self.capacity = capacity }

    func collateral(_ hash: [UInt8]) -> VerifiedCollateral? { state.withLock { $0.collateral[hash] } }

    func store(_ verified: VerifiedCollateral) {
        state.withLock {
            if $0.collateral.count >= capacity { $0.collateral.removeAll() }
            $0.collateral[verified.collateral.contentHash] = verified
        }
    }

    func pck(_ key: [UInt8]) -> QuoteVerifier.CheckedPCK? { state.withLock { $0.pcks[key] } }

    func store(_ pck: QuoteVerifier.CheckedPCK, for key: [UInt8]) {
        state.withLock {
            if $0.pcks.count >= capacity { $0.pcks.removeAll() }
            $0.pcks[key] = pck
        }
    }

    /// A QE attestation key parsed earlier (keyed by its 64 raw bytes: parsing is a pure function of them, so the entry
    /// never goes stale; it only spares OpenSSL's key import, a sixth of a warm verification).
    func attestationKey(_ raw: [UInt8]) -> ECPublicKey? { state.withLock { $0.attestationKeys[raw] } }

    func store(attestationKey: ECPublicKey, for raw: [UInt8]) {
        state.withLock {
            if $0.attestationKeys.count >= capacity { $0.attestationKeys.removeAll() }
            $0.attestationKeys[raw] = attestationKey
        }
    }

    /// The FMSPC and PCK CA read from a PCK certificate chain before (keyed by the SHA-256 of the quote's
    /// certification data: a pure function of those bytes, never stale; it spares parsing the PEM chain to pick the
    /// platform's collateral).
    func platform(_ key: [UInt8]) -> PCKPlatform? { state.withLock { $0.platforms[key] } }

    func store(platform: PCKPlatform, for key: [UInt8]) {
        state.withLock {
            if $0.platforms.count >= capacity { $0.platforms.removeAll() }
            $0.platforms[key] = platform
        }
    }

    /// Whether this QE report signature verified before, keyed by SHA-256(PCK key x ‖ y ‖ QE report ‖ signature).
    /// ECDSA verification is a pure function of those bytes, so an entry never goes stale; a platform's QE report and
    /// its signature are the same in every quote until the QE makes a new attestation key, so this spares one of
    /// the two signature verifications of a warm quote. Only successes are kept.
    func qeReportSignatureVerified(_ key: [UInt8]) -> Bool { state.withLock { $0.qeReportSignatures.contains(key) } }

    func storeQEReportSignatureVerified(_ key: [UInt8]) {
        state.withLock {
            if $0.qeReportSignatures.count >= capacity { $0.qeReportSignatures.removeAll() }
            $0.qeReportSignatures.insert(key)
        }
    }

    /// Drops every entry.
    public func removeAll() { state.withLock { $0 = State() } }

    /// Numbers of cached collateral sets, PCK chains, attestation keys and verified QE report signatures.
    public var counts: (collateral: Int, pcks: Int, attestationKeys: Int, qeReportSignatures: Int) {
        state.withLock { ($0.collateral.count, $0.pcks.count, $0.attestationKeys.count, $0.qeReportSignatures.count) }
    }
}
