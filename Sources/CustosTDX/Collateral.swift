public import CustosCrypto
public import Foundation

// MARK: - TCB Info (spec §2.2)

/// Intel's TCB status of a TCB level (spec §2.5 step 5).
public enum TCBLevelStatus: String, Sendable, Codable, CaseIterable {
    case upToDate = "UpToDate"
    case swHardeningNeeded = "SWHardeningNeeded"
    case configurationNeeded = "ConfigurationNeeded"
    case configurationAndSWHardeningNeeded = "ConfigurationAndSWHardeningNeeded"
    case outOfDate = "OutOfDate"
    case outOfDateConfigurationNeeded = "OutOfDateConfigurationNeeded"
    case revoked = "Revoked"
}

/// One platform TCB level of a TDX TCB Info.
public struct TCBLevel: Sendable, Equatable {
    /// 16 SGX TCB component SVNs.
    public let sgxComponents: [Int]
    public let pceSVN: Int
    /// 16 TDX TCB component SVNs (compared with TEE_TCB_SVN).
    public let tdxComponents: [Int]
    public let tcbDate: String
    /// The status string as published (validated when the level is used, QVL 50).
    public let tcbStatus: String
    public let advisoryIDs: [String]
}

/// A TCB level of a TDX module identity or of the QE identity: `{tcb:{isvsvn}, tcbDate, tcbStatus, advisoryIDs?}`.
public struct ISVSVNLevel: Sendable, Equatable {
    public let isvSVN: Int
    public let tcbDate: String
    public let tcbStatus: String
    public let advisoryIDs: [String]
}

/// A TDX module identity (`tdxModuleIdentities[]`, e.g. `TDX_01`).
public struct TDXModuleIdentity: Sendable, Equatable {
    public let id: String
    public let mrSigner: [UInt8]
    public let attributes: [UInt8]
    public let attributesMask: [UInt8]
    public let tcbLevels: [ISVSVNLevel]
}

/// A TDX TCB Info v3 (spec §2.2), with the exact signed bytes.
public struct TCBInfo: Sendable, Equatable {
    /// The exact bytes of the `tcbInfo` object that the signature covers.
    public let signedBytes: [UInt8]
    /// Raw r‖s (64 bytes).
    public let signature: [UInt8]
    public let id: String
    public let version: Int
    public let issueDate: Date
    public let nextUpdate: Date
    public let fmspc: [UInt8]
    public let pceID: [UInt8]
    public let tcbType: Int
    public let tcbEvaluationDataNumber: Int
    /// `tdxModule`: mrsigner, attributes, attributesMask.
    public let tdxModule: TDXModuleIdentity
    /// `tdxModuleIdentities`, `nil` when absent.
    public let tdxModuleIdentities: [TDXModuleIdentity]?
    /// Platform TCB levels, in published (descending) order (spec §2.5 step 1).
    public let tcbLevels: [TCBLevel]

    /// Parses the `tcbInfo` object bytes and its signature.
    /// - Throws: ``TDXError/Code/malformedCollateral`` on a missing or ill-formed field (spec §2.2 step 4).
    public init(signedBytes: [UInt8], signature: [UInt8]) throws(TDXError) {
        struct JSONComponent: Decodable { let svn: Int }
        struct JSONTCB: Decodable {
            let sgxtcbcomponents: [JSONComponent]?
            let pcesvn: Int?
            let tdxtcbcomponents: [JSONComponent]?
            let isvsvn: Int?
        }
        struct JSONLevel: Decodable {
            let tcb: JSONTCB
            let tcbDate: String
            let tcbStatus: String
            let advisoryIDs: [String]?
        }
        struct JSONModule: Decodable {
            let id: String?
            let mrsigner: String
            let attributes: String
            let attributesMask: String
            let tcbLevels: [JSONLevel]?
        }
        struct JSONTCBInfo: Decodable {
            let id: String?
            let version: Int
            let issueDate: String
            let nextUpdate: String
            let fmspc: String
            let pceId: String
            let tcbType: Int?
            let tcbEvaluationDataNumber: Int?
            let tdxModule: JSONModule?
            let tdxModuleIdentities: [JSONModule]?
            let tcbLevels: [JSONLevel]
        }
        let json = try RawJSON.decode(JSONTCBInfo.self, from: signedBytes, what: "tcbInfo")
        guard signature.count == 64 else { throw TDXError(.malformedCollateral, "tcbInfo signature is \(signature.count) bytes, not 64") }
        self.signedBytes = signedBytes
        self.signature = signature
        id = json.id ?? "SGX"
        version = json.version
        guard version == 3, id == "TDX" else {
            throw TDXError(.malformedCollateral, "TCB Info id \(id) version \(version) is not a TDX v3 TCB Info")
        }
        issueDate = try Timestamp.parse(json.issueDate, field: "tcbInfo.issueDate")
        nextUpdate = try Timestamp.parse(json.nextUpdate, field: "tcbInfo.nextUpdate")
        fmspc = try fixedHex(json.fmspc, 6, "tcbInfo.fmspc")
        pceID = try fixedHex(json.pceId, 2, "tcbInfo.pceId")
        tcbType = json.tcbType ?? 0
        tcbEvaluationDataNumber = json.tcbEvaluationDataNumber ?? 0
        func module(_ m: JSONModule, _ name: String) throws(TDXError) -> TDXModuleIdentity {
            var levels: [ISVSVNLevel] = []
            for level in m.tcbLevels ?? [] {
                guard let isvsvn = level.tcb.isvsvn else { throw TDXError(.malformedCollateral, "\(name) level without isvsvn") }
                levels.append(
                    ISVSVNLevel(isvSVN: isvsvn, tcbDate: level.tcbDate, tcbStatus: level.tcbStatus, advisoryIDs: level.advisoryIDs ?? []))
            }
            return TDXModuleIdentity(
                id: m.id ?? "", mrSigner: try fixedHex(m.mrsigner, 48, "\(name).mrsigner"),
                attributes: try fixedHex(m.attributes, 8, "\(name).attributes"),
                attributesMask: try fixedHex(m.attributesMask, 8, "\(name).attributesMask"), tcbLevels: levels)
        }
        guard let tdxModule = json.tdxModule else { throw TDXError(.malformedCollateral, "TDX TCB Info lacks tdxModule") }
        self.tdxModule = try module(tdxModule, "tdxModule")
        if let identities = json.tdxModuleIdentities {
            var out: [TDXModuleIdentity] = []
            for identity in identities {
                guard let identityID = identity.id, identityID.hasPrefix("TDX_"), identity.tcbLevels?.isEmpty == false else {
                    throw TDXError(.malformedCollateral, "tdxModuleIdentities entry without a TDX_xx id or tcbLevels")
                }
                out.append(try module(identity, identityID))
            }
            tdxModuleIdentities = out
        } else {
            tdxModuleIdentities = nil
        }
        guard !json.tcbLevels.isEmpty, json.tcbLevels.count <= 1024 else {
            throw TDXError(.malformedCollateral, "tcbLevels is empty or has more than 1024 entries")
        }
        var levels: [TCBLevel] = []
        for level in json.tcbLevels {
            guard let sgx = level.tcb.sgxtcbcomponents, sgx.count == 16, let tdx = level.tcb.tdxtcbcomponents, tdx.count == 16,
                let pcesvn = level.tcb.pcesvn
            else {
                throw TDXError(.malformedCollateral, "TDX tcbLevel needs 16 sgxtcbcomponents, pcesvn and 16 tdxtcbcomponents")
            }
            levels.append(
                TCBLevel(
                    sgxComponents: sgx.map(\.svn), pceSVN: pcesvn, tdxComponents: tdx.map(\.svn), tcbDate: level.tcbDate,
                    tcbStatus: level.tcbStatus, advisoryIDs: level.advisoryIDs ?? []))
        }
        var seen = Set<[Int]>()
        for level in levels where !seen.insert(level.sortKey).inserted {
            throw TDXError(.malformedCollateral, "duplicate tcbLevel \(level.tcbDate)")
        }
        // Spec §2.5 step 1: QVL sorts descending; Intel publishes the levels already in that order, and dcap-qvl walks
        // them as published, so the published order is kept.
        tcbLevels = levels
    }

    /// The module identity `TDX_%02X` for a TDX module major version (uppercase hex compare, spec §8 trap 9).
    public func moduleIdentity(majorVersion: UInt8) -> TDXModuleIdentity? {
        let wanted = "TDX_" + (majorVersion < 16 ? "0" : "") + String(majorVersion, radix: 16, uppercase: true)
        return tdxModuleIdentities?.first { $0.id.uppercased() == wanted }
    }
}

extension TCBLevel {
    var sortKey: [Int] { sgxComponents + [pceSVN] + tdxComponents }
}

// MARK: - QE Identity (spec §2.3)

/// A TD_QE identity v2 (spec §2.3), with the exact signed bytes.
public struct QEIdentity: Sendable, Equatable {
    /// The exact bytes of the `enclaveIdentity` object that the signature covers.
    public let signedBytes: [UInt8]
    public let signature: [UInt8]
    public let id: String
    public let version: Int
    public let issueDate: Date
    public let nextUpdate: Date
    public let tcbEvaluationDataNumber: Int
    public let miscSelect: UInt32
    public let miscSelectMask: UInt32
    public let attributes: [UInt8]
    public let attributesMask: [UInt8]
    public let mrSigner: [UInt8]
    public let isvProdID: Int
    public let tcbLevels: [ISVSVNLevel]

    /// Parses the `enclaveIdentity` object bytes and its signature.
    /// - Throws: ``TDXError/Code/malformedCollateral`` on a missing or ill-formed field.
    public init(signedBytes: [UInt8], signature: [UInt8]) throws(TDXError) {
        struct JSONTCB: Decodable { let isvsvn: Int }
        struct JSONLevel: Decodable {
            let tcb: JSONTCB
            let tcbDate: String
            let tcbStatus: String
            let advisoryIDs: [String]?
        }
        struct JSONIdentity: Decodable {
            let id: String
            let version: Int
            let issueDate: String
            let nextUpdate: String
            let tcbEvaluationDataNumber: Int?
            let miscselect: String
            let miscselectMask: String
            let attributes: String
            let attributesMask: String
            let mrsigner: String
            let isvprodid: Int
            let tcbLevels: [JSONLevel]
        }
        let json = try RawJSON.decode(JSONIdentity.self, from: signedBytes, what: "enclaveIdentity")
        guard signature.count == 64 else {
            throw TDXError(.malformedCollateral, "QE identity signature is \(signature.count) bytes, not 64")
        }
        self.signedBytes = signedBytes
        self.signature = signature
        id = json.id
        version = json.version
        issueDate = try Timestamp.parse(json.issueDate, field: "enclaveIdentity.issueDate")
        nextUpdate = try Timestamp.parse(json.nextUpdate, field: "enclaveIdentity.nextUpdate")
        tcbEvaluationDataNumber = json.tcbEvaluationDataNumber ?? 0
        miscSelect = UInt32(bigEndianBytes: try fixedHex(json.miscselect, 4, "miscselect"))
        miscSelectMask = UInt32(bigEndianBytes: try fixedHex(json.miscselectMask, 4, "miscselectMask"))
        attributes = try fixedHex(json.attributes, 16, "attributes")
        attributesMask = try fixedHex(json.attributesMask, 16, "attributesMask")
        mrSigner = try fixedHex(json.mrsigner, 32, "mrsigner")
        isvProdID = json.isvprodid
        guard !json.tcbLevels.isEmpty else { throw TDXError(.malformedCollateral, "QE identity has no tcbLevels") }
        tcbLevels = json.tcbLevels.map {
            ISVSVNLevel(isvSVN: $0.tcb.isvsvn, tcbDate: $0.tcbDate, tcbStatus: $0.tcbStatus, advisoryIDs: $0.advisoryIDs ?? [])
        }
    }
}

extension UInt32 {
    /// From 4 big-endian bytes (Intel's JSON hex for MISCSELECT reads as a big-endian number).
    init(bigEndianBytes b: [UInt8]) {
        self = b.reduce(0) { $0 << 8 | UInt32($1) }
    }
}

func fixedHex(_ text: String, _ count: Int, _ field: String) throws(TDXError) -> [UInt8] {
    guard text.utf8.count == 2 * count, let bytes = try? Hex.decode(text) else {
        throw TDXError(.malformedCollateral, "\(field) is not \(2 * count) hex digits")
    }
    return bytes
}

// MARK: - Collateral (spec §3)

/// Everything a TDX quote is verified against (spec §3): TCB Info, QE Identity, their issuer chains, the PCK CA
/// CRL with its issuer chain, and the Intel Root CA CRL. Parsed but not verified; see ``QuoteVerifier``.
public struct Collateral: Sendable, Equatable {
    public let tcbInfo: TCBInfo
    public let tcbInfoIssuerChain: [Certificate]
    public let qeIdentity: QEIdentity
    public let qeIdentityIssuerChain: [Certificate]
    public let pckCRL: CertificateRevocationList
    public let pckCRLIssuerChain: [Certificate]
    public let rootCACRL: CertificateRevocationList
    /// SHA-256 over all the raw inputs: the cache key of this collateral's verification.
    public let contentHash: [UInt8]

    /// From the PCS response bodies and headers (the "PCS directory" layout, spec §3).
    /// - Parameters:
    ///   - tcbInfoBody: `{"tcbInfo":{…},"signature":"…"}` exactly as served.
    ///   - tcbInfoIssuerChain: URL-decoded `TCB-Info-Issuer-Chain` PEM.
    ///   - qeIdentityBody: `{"enclaveIdentity":{…},"signature":"…"}` exactly as served.
    ///   - qeIdentityIssuerChain: URL-decoded `SGX-Enclave-Identity-Issuer-Chain` PEM.
    ///   - pckCRL: the PCK CA CRL (DER, PEM or hex).
    ///   - pckCRLIssuerChain: URL-decoded `SGX-PCK-CRL-Issuer-Chain` PEM.
    ///   - rootCACRL: the Intel SGX Root CA CRL (DER, PEM or hex).
    /// - Throws: ``TDXError/Code/malformedCollateral``.
    public init(
        tcbInfoBody: [UInt8], tcbInfoIssuerChain: String, qeIdentityBody: [UInt8], qeIdentityIssuerChain: String,
        pckCRL: [UInt8], pckCRLIssuerChain: String, rootCACRL: [UInt8]
    ) throws(TDXError) {
        func envelope(_ body: [UInt8], _ key: String) throws(TDXError) -> (signed: [UInt8], signature: [UInt8]) {
            guard let range = try RawJSON.memberRange(key, in: body) else { throw TDXError(.malformedCollateral, "body has no \(key)") }
            struct Envelope: Decodable { let signature: String }
            let envelope = try RawJSON.decode(Envelope.self, from: body, what: key)
            return (Array(body[range]), try fixedHex(envelope.signature, 64, "\(key) signature"))
        }
        let tcb = try envelope(tcbInfoBody, "tcbInfo")
        let qe = try envelope(qeIdentityBody, "enclaveIdentity")
        try self.init(
            tcbInfo: TCBInfo(signedBytes: tcb.signed, signature: tcb.signature), tcbInfoIssuerChain: tcbInfoIssuerChain,
            qeIdentity: QEIdentity(signedBytes: qe.signed, signature: qe.signature), qeIdentityIssuerChain: qeIdentityIssuerChain,
            pckCRL: pckCRL, pckCRLIssuerChain: pckCRLIssuerChain, rootCACRL: rootCACRL)
    }

    /// From a dcap-qvl `QuoteCollateralV3` JSON document (`collateral.json` in testdata): `tcb_info` and
    /// `qe_identity` are strings holding the exact signed object bytes; CRLs are hex DER.
    /// - Throws: ``TDXError/Code/malformedCollateral``.
    public init(quoteCollateralV3JSON bytes: [UInt8]) throws(TDXError) {
        struct V3: Decodable {
            let pck_crl_issuer_chain: String
            let root_ca_crl: String
            let pck_crl: String
            let tcb_info_issuer_chain: String
            let tcb_info: String
            let tcb_info_signature: String
            let qe_identity_issuer_chain: String
            let qe_identity: String
            let qe_identity_signature: String
        }
        let v3 = try RawJSON.decode(V3.self, from: bytes, what: "QuoteCollateralV3")
        guard let rootCRL = try? Hex.decode(v3.root_ca_crl), let pckCRL = try? Hex.decode(v3.pck_crl) else {
            throw TDXError(.malformedCollateral, "QuoteCollateralV3 CRLs are not hex")
        }
        try self.init(
            tcbInfo: TCBInfo(signedBytes: Array(v3.tcb_info.utf8), signature: fixedHex(v3.tcb_info_signature, 64, "tcb_info_signature")),
            tcbInfoIssuerChain: v3.tcb_info_issuer_chain,
            qeIdentity: QEIdentity(
                signedBytes: Array(v3.qe_identity.utf8), signature: fixedHex(v3.qe_identity_signature, 64, "qe_identity_signature")),
            qeIdentityIssuerChain: v3.qe_identity_issuer_chain, pckCRL: pckCRL, pckCRLIssuerChain: v3.pck_crl_issuer_chain,
            rootCACRL: rootCRL)
    }

    /// From parsed parts.
    public init(
        tcbInfo: TCBInfo, tcbInfoIssuerChain: String, qeIdentity: QEIdentity, qeIdentityIssuerChain: String, pckCRL: [UInt8],
        pckCRLIssuerChain: String, rootCACRL: [UInt8]
    ) throws(TDXError) {
        func chain(_ pem: String, _ name: String) throws(TDXError) -> [Certificate] {
            do {
                let certs = try Certificate.parsePEMChain(pem)
                guard !certs.isEmpty, certs.count <= 4 else {
                    throw TDXError(.malformedCollateral, "\(name) has \(certs.count) certificates")
                }
                return certs
            } catch let error as TDXError {
                throw error
            } catch {
                throw TDXError(.malformedCollateral, "\(name): \(error)")
            }
        }
        func crl(_ bytes: [UInt8], _ name: String) throws(TDXError) -> CertificateRevocationList {
            do { return try CertificateRevocationList(anyEncoding: bytes) } catch {
                throw TDXError(.malformedCollateral, "\(name): \(error.reason)")
            }
        }
        self.tcbInfo = tcbInfo
        self.qeIdentity = qeIdentity
        self.tcbInfoIssuerChain = try chain(tcbInfoIssuerChain, "TCB Info issuer chain")
        self.qeIdentityIssuerChain = try chain(qeIdentityIssuerChain, "QE Identity issuer chain")
        self.pckCRLIssuerChain = try chain(pckCRLIssuerChain, "PCK CRL issuer chain")
        self.pckCRL = try crl(pckCRL, "PCK CRL")
        self.rootCACRL = try crl(rootCACRL, "Root CA CRL")
        var digest = StreamingDigest(.sha256)
        for part in [
            tcbInfo.signedBytes, tcbInfo.signature, qeIdentity.signedBytes, qeIdentity.signature, self.pckCRL.der, self.rootCACRL.der,
        ] + self.tcbInfoIssuerChain.map(\.der) + self.qeIdentityIssuerChain.map(\.der) + self.pckCRLIssuerChain.map(\.der) {
            digest.update(withUnsafeBytes(of: UInt64(part.count).littleEndian) { Array($0) })
            digest.update(part)
        }
        contentHash = digest.finalize()
    }
}
