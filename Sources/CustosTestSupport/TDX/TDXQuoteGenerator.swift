public import CustosCrypto
public import CustosTDX
public import Foundation

/// Makes TDX DCAP quotes and collateral signed by a private test PCK hierarchy (a test root, a PCK Platform CA, a PCK
/// leaf with the real SGX extension shape, a TCB signing certificate, CRLs, TCB Info and QE Identity signed over their
/// exact bytes), so that tests can drive every verification status and failure through a custom trust anchor.
///
/// Layouts follow `specs/tdx.md` §1 (quote) and §2.2–2.3 (collateral JSON).
public struct TDXTestHierarchy: Sendable {
    public let rootKey: ECPrivateKey
    public let root: Certificate
    public let platformCAKey: ECPrivateKey
    public let platformCA: Certificate
    public let tcbSigningKey: ECPrivateKey
    public let tcbSigning: Certificate
    public let notBefore: Date
    public let notAfter: Date

    /// Makes a fresh hierarchy valid from `notBefore` to `notAfter`.
    public init(notBefore: Date = Date(timeIntervalSince1970: 1_700_000_000), notAfter: Date = Date(timeIntervalSince1970: 2_500_000_000))
        throws
    {
        self.notBefore = notBefore
        self.notAfter = notAfter
        rootKey = try ECPrivateKey(generating: .p256)
        root = try CertificateBuilder(
            subject: [("CN", "Custos Test SGX Root CA"), ("O", "Custos Test")], serialNumber: [1], notBefore: notBefore, notAfter: notAfter,
            isCA: true, keyUsage: 0x06
        ).sign(subjectKey: .ec(rootKey.publicKey), issuer: nil, issuerKey: .ec(rootKey))
        platformCAKey = try ECPrivateKey(generating: .p256)
        platformCA = try CertificateBuilder(
            subject: [("CN", "Custos Test SGX PCK Platform CA"), ("O", "Custos Test")], serialNumber: [2], notBefore: notBefore,
            notAfter: notAfter, isCA: true, keyUsage: 0x06
        ).sign(subjectKey: .ec(platformCAKey.publicKey), issuer: root, issuerKey: .ec(rootKey))
        tcbSigningKey = try ECPrivateKey(generating: .p256)
        tcbSigning = try CertificateBuilder(
            subject: [("CN", "Custos Test SGX TCB Signing"), ("O", "Custos Test")], serialNumber: [3], notBefore: notBefore,
            notAfter: notAfter, isCA: false, keyUsage: 0x80
        ).sign(subjectKey: .ec(tcbSigningKey.publicKey), issuer: root, issuerKey: .ec(rootKey))
    }

    /// A hierarchy from stored keys and certificates (``store(in:)`` / ``load(from:)``).
    public init(
        rootKey: ECPrivateKey, root: Certificate, platformCAKey: ECPrivateKey, platformCA: Certificate, tcbSigningKey: ECPrivateKey,
        tcbSigning: Certificate
    ) {
        self.rootKey = rootKey
        self.root = root
        self.platformCAKey = platformCAKey
        self.platformCA = platformCA
        self.tcbSigningKey = tcbSigningKey
        self.tcbSigning = tcbSigning
        self.notBefore = root.notBefore
        self.notAfter = root.notAfter
    }

    /// The same root and TCB signing certificate with a PCK **Processor** CA in place of the Platform CA (Intel issues
    /// the PCK certificates of single-package platforms from it): quotes and collateral made with the result carry that
    /// CA, and their PCK CRL is its CRL (PCS `pckcrl?ca=processor`).
    public func withProcessorCA() throws -> TDXTestHierarchy {
        let key = try ECPrivateKey(generating: .p256)
        let ca = try CertificateBuilder(
            subject: [("CN", "Custos Test SGX PCK Processor CA"), ("O", "Custos Test")], serialNumber: [4], notBefore: notBefore,
            notAfter: notAfter, isCA: true, keyUsage: 0x06
        ).sign(subjectKey: .ec(key.publicKey), issuer: root, issuerKey: .ec(rootKey))
        return TDXTestHierarchy(
            rootKey: rootKey, root: root, platformCAKey: key, platformCA: ca, tcbSigningKey: tcbSigningKey, tcbSigning: tcbSigning)
    }

    static let storedFiles = ["root", "platform-ca", "tcb-signing"]

    /// Writes the three keys (PKCS#8, 0600) and certificates (PEM) to `directory` (a test hierarchy: its keys are
    /// worthless outside tests, but still not world-readable).
    public func store(in directory: URL) throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        for (name, key, certificate) in [
            ("root", rootKey, root), ("platform-ca", platformCAKey, platformCA), ("tcb-signing", tcbSigningKey, tcbSigning),
        ] {
            let keyURL = directory.appendingPathComponent("\(name).key")
            try Data(try key.pkcs8PEM().utf8).write(to: keyURL)
            try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: keyURL.path)
            try Data(certificate.pemRepresentation.utf8).write(to: directory.appendingPathComponent("\(name).pem"))
        }
    }

    /// Reads a hierarchy ``store(in:)`` wrote.
    public static func load(from directory: URL) throws -> TDXTestHierarchy {
        func key(_ name: String) throws -> ECPrivateKey {
            try ECPrivateKey(pem: String(decoding: try Data(contentsOf: directory.appendingPathComponent("\(name).key")), as: UTF8.self))
        }
        func certificate(_ name: String) throws -> Certificate {
            try Certificate(derOrPEM: Array(try Data(contentsOf: directory.appendingPathComponent("\(name).pem"))))
        }
        return TDXTestHierarchy(
            rootKey: try key("root"), root: try certificate("root"), platformCAKey: try key("platform-ca"),
            platformCA: try certificate("platform-ca"), tcbSigningKey: try key("tcb-signing"), tcbSigning: try certificate("tcb-signing"))
    }

    /// The SGX extension DER of a PCK certificate (spec §1.5).
    public static func sgxExtension(fmspc: [UInt8], pceID: [UInt8] = [0, 0], components: [Int], pceSVN: Int, sgxType: Int = 1) -> [UInt8] {
        let base = PCKExtension.oid
        var writer = DERWriter()
        writer.sequence { w in
            w.sequence { e in
                _ = e.objectIdentifier(base + ".1")
                e.octetString([UInt8](repeating: 0x11, count: 16))
            }
            w.sequence { e in
                _ = e.objectIdentifier(base + ".2")
                e.sequence { tcb in
                    for (index, svn) in components.enumerated() {
                        tcb.sequence { c in
                            _ = c.objectIdentifier(base + ".2.\(index + 1)")
                            c.integer(svn)
                        }
                    }
                    tcb.sequence { c in
                        _ = c.objectIdentifier(base + ".2.17")
                        c.integer(pceSVN)
                    }
                    tcb.sequence { c in
                        _ = c.objectIdentifier(base + ".2.18")
                        c.octetString(components.map { UInt8(truncatingIfNeeded: $0) })
                    }
                }
            }
            w.sequence { e in
                _ = e.objectIdentifier(base + ".3")
                e.octetString(pceID)
            }
            w.sequence { e in
                _ = e.objectIdentifier(base + ".4")
                e.octetString(fmspc)
            }
            w.sequence { e in
                _ = e.objectIdentifier(base + ".5")
                e.element(0x0a, [UInt8(sgxType)])
            }
        }
        return writer.bytes
    }
}

/// A generated quote with its collateral.
public struct TDXTestCase: Sendable {
    public let quote: [UInt8]
    public let collateral: Collateral
    public let root: Certificate
    public let pck: Certificate
}

/// What to put in a generated quote and its collateral. Defaults give an UpToDate v4 TD10 quote.
public struct TDXQuoteSpec: Sendable {
    public var version: UInt16 = 4
    public var bodyType: TDReportBodyType = .td10
    public var fmspc: [UInt8] = [0x00, 0xa0, 0x6f, 0x00, 0x00, 0x00]
    public var pckComponents: [Int] = [4, 4, 2, 2, 4, 1, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0]
    public var pckPCESVN = 13
    /// TEE_TCB_SVN; [1] > 0 selects the `TDX_%02X` module identity.
    public var teeTCBSVN: [UInt8] = [5, 1, 3] + [UInt8](repeating: 0, count: 13)
    public var teeTCBSVN2: [UInt8] = [5, 1, 3] + [UInt8](repeating: 0, count: 13)
    public var tdAttributes: UInt64 = 1 << 28
    public var seamAttributes: [UInt8] = [UInt8](repeating: 0, count: 8)
    public var mrSignerSeam: [UInt8] = [UInt8](repeating: 0, count: 48)
    public var reportData: [UInt8] = [UInt8](repeating: 0xab, count: 64)
    /// MRTD (48 bytes).
    public var mrTD: [UInt8] = [UInt8](repeating: 0x01, count: 48)
    /// MRCONFIGID (48 bytes): the init-data digest when the TD was launched with init-data.
    public var mrConfigID: [UInt8] = [UInt8](repeating: 0, count: 48)
    /// RTMR0…3 (48 bytes each).
    public var rtmrs: [[UInt8]] = [0x10, 0x11, 0x12, 0x13].map { [UInt8](repeating: $0, count: 48) }
    public var qeISVSVN: UInt16 = 4
    /// Platform TCB levels as JSON objects (`tcb`, `tcbDate`, `tcbStatus`, `advisoryIDs`), newest first.
    public var tcbLevels: [String] = [TDXQuoteSpec.level(sgx: [4, 4, 2, 2, 4, 1, 0, 5], pcesvn: 13, tdx: [5, 0, 3], status: "UpToDate")]
    /// TDX module identity levels of `TDX_01` (isvsvn, status, advisories), newest first.
    public var moduleLevels: [(Int, String, [String])] = [(3, "UpToDate", [])]
    /// QE identity levels (isvsvn, status, advisories), newest first.
    public var qeLevels: [(Int, String, [String])] = [(4, "UpToDate", [])]
    public var issueDate = "2025-01-01T00:00:00Z"
    public var nextUpdate = "2025-02-01T00:00:00Z"
    /// List the PCK leaf in the PCK CRL.
    public var revokePCK = false
    /// List the PCK Platform CA in the Root CA CRL.
    public var revokePlatformCA = false
    /// List the TCB signing certificate in the Root CA CRL.
    public var revokeTCBSigning = false
    /// Corrupt the QE REPORTDATA binding.
    public var breakQEReportData = false

    public init() {}

    /// A TCB level JSON object with the given leading component SVNs (rest zero).
    public static func level(
        sgx: [Int], pcesvn: Int, tdx: [Int], status: String, date: String = "2024-11-13T00:00:00Z", advisories: [String] = []
    )
        -> String
    {
        func components(_ svns: [Int]) -> String {
            "[" + (svns + [Int](repeating: 0, count: 16 - svns.count)).map { "{\"svn\":\($0)}" }.joined(separator: ",") + "]"
        }
        let advisoryJSON = advisories.isEmpty ? "" : ",\"advisoryIDs\":[" + advisories.map { "\"\($0)\"" }.joined(separator: ",") + "]"
        return "{\"tcb\":{\"sgxtcbcomponents\":\(components(sgx)),\"pcesvn\":\(pcesvn),\"tdxtcbcomponents\":\(components(tdx))},"
            + "\"tcbDate\":\"\(date)\",\"tcbStatus\":\"\(status)\"\(advisoryJSON)}"
    }
}

extension TDXTestHierarchy {
    private static func isvLevels(_ levels: [(Int, String, [String])]) -> String {
        "["
            + levels.map { level in
                let advisories = level.2.isEmpty ? "" : ",\"advisoryIDs\":[" + level.2.map { "\"\($0)\"" }.joined(separator: ",") + "]"
                return "{\"tcb\":{\"isvsvn\":\(level.0)},\"tcbDate\":\"2024-11-13T00:00:00Z\",\"tcbStatus\":\"\(level.1)\"\(advisories)}"
            }.joined(separator: ",") + "]"
    }

    /// Makes a quote and matching collateral.
    public func make(_ spec: TDXQuoteSpec) throws -> TDXTestCase {
        let factory = try quoteFactory(spec)
        return TDXTestCase(
            quote: try factory.quote(reportData: spec.reportData), collateral: factory.collateral, root: root, pck: factory.pck)
    }

    /// A factory for many quotes of one platform and TD (one PCK, one attestation key, one collateral): each quote
    /// costs one ECDSA signature, so load generators can bind a fresh REPORTDATA per request cheaply.
    public func quoteFactory(_ spec: TDXQuoteSpec) throws -> TDXQuoteFactory {
        // PCK leaf.
        let pckKey = try ECPrivateKey(generating: .p256)
        let pck = try CertificateBuilder(
            subject: [("CN", "Custos Test SGX PCK Certificate"), ("O", "Custos Test")], serialNumber: [0x42], notBefore: notBefore,
            notAfter: notAfter, isCA: false, keyUsage: 0x80,
            extensions: [
                CertificateBuilder.extensionValue(
                    oid: PCKExtension.oid, critical: false,
                    value: Self.sgxExtension(fmspc: spec.fmspc, components: spec.pckComponents, pceSVN: spec.pckPCESVN))
            ]
        ).sign(subjectKey: .ec(pckKey.publicKey), issuer: platformCA, issuerKey: .ec(platformCAKey))
        let attestationKey = try ECPrivateKey(generating: .p256)
        let attestationPublic = attestationKey.publicKey.x + attestationKey.publicKey.y

        // QE report (spec §1.4).
        let authData = [UInt8](repeating: 0x5c, count: 32)
        var report = [UInt8](repeating: 0, count: 384)
        report[48] = 0x11  // ATTRIBUTES = 11000000…
        let mrSigner = try Hex.decode("DC9E2A7C6F948F17474E34A7FC43ED030F7C1563F1BABDDF6340C82E0E54A8C5")
        report.replaceSubrange(128..<160, with: mrSigner)
        report[256] = 2  // ISVPRODID
        report[258] = UInt8(spec.qeISVSVN & 0xff)
        report[259] = UInt8(spec.qeISVSVN >> 8)
        var binding = Digest.sha256(attestationPublic + authData)
        if spec.breakQEReportData { binding[0] ^= 1 }
        report.replaceSubrange(320..<352, with: binding)
        let qeSignature = try pckKey.signature(for: report, digest: .sha256).rawBigEndian(componentByteCount: 32)

        let pem = Array((pck.pemRepresentation + platformCA.pemRepresentation + root.pemRepresentation).utf8) + [0]
        var cert: [UInt8] = report + qeSignature
        cert += [UInt8(authData.count), 0] + authData
        cert += [5, 0]
        for i in 0..<4 { cert.append(UInt8(truncatingIfNeeded: pem.count >> (8 * i))) }
        cert += pem
        var tail: [UInt8] = attestationPublic + [6, 0]
        for i in 0..<4 { tail.append(UInt8(truncatingIfNeeded: cert.count >> (8 * i))) }
        tail += cert
        return TDXQuoteFactory(
            spec: spec, attestationKey: attestationKey, signatureTail: tail, collateral: try collateral(spec), pck: pck)
    }

    /// The collateral of `spec`'s platform, signed by this hierarchy.
    public func collateral(_ spec: TDXQuoteSpec) throws -> Collateral {
        let files = Dictionary(uniqueKeysWithValues: try collateralFiles(spec))
        func file(_ name: String) -> [UInt8] { files[name] ?? [] }
        func text(_ name: String) -> String { String(decoding: file(name), as: UTF8.self) }
        return try Collateral(
            tcbInfoBody: file("tcb_info.json"), tcbInfoIssuerChain: text("tcb_info_issuer_chain.pem"),
            qeIdentityBody: file("qe_identity.json"), qeIdentityIssuerChain: text("qe_identity_issuer_chain.pem"),
            pckCRL: file("pck_crl.der"), pckCRLIssuerChain: text("pck_crl_issuer_chain.pem"), rootCACRL: file("root_ca_crl.der"))
    }

    /// The collateral of `spec`'s platform as the files of the PCS directory layout (`tcb_info.json`, …), what
    /// `custos tdx collateral fetch` writes and `custos serve --collateral DIR/<FMSPC>` reads.
    public func collateralFiles(_ spec: TDXQuoteSpec) throws -> [(String, [UInt8])] {
        // Collateral (spec §2.2, §2.3), compact JSON signed over its exact bytes.
        let zeros48 = String(repeating: "0", count: 96)
        let moduleLevels = Self.isvLevels(spec.moduleLevels)
        let tcbInfo =
            "{\"id\":\"TDX\",\"version\":3,\"issueDate\":\"\(spec.issueDate)\",\"nextUpdate\":\"\(spec.nextUpdate)\","
            + "\"fmspc\":\"\(Hex.encode(spec.fmspc).uppercased())\",\"pceId\":\"0000\",\"tcbType\":0,\"tcbEvaluationDataNumber\":18,"
            + "\"tdxModule\":{\"mrsigner\":\"\(zeros48)\",\"attributes\":\"0000000000000000\",\"attributesMask\":\"FFFFFFFFFFFFFFFF\"},"
            + "\"tdxModuleIdentities\":[{\"id\":\"TDX_01\",\"mrsigner\":\"\(zeros48)\",\"attributes\":\"0000000000000000\","
            + "\"attributesMask\":\"FFFFFFFFFFFFFFFF\",\"tcbLevels\":\(moduleLevels)}],"
            + "\"tcbLevels\":[\(spec.tcbLevels.joined(separator: ","))]}"
        let qeIdentity =
            "{\"id\":\"TD_QE\",\"version\":2,\"issueDate\":\"\(spec.issueDate)\",\"nextUpdate\":\"\(spec.nextUpdate)\","
            + "\"tcbEvaluationDataNumber\":18,\"miscselect\":\"00000000\",\"miscselectMask\":\"FFFFFFFF\","
            + "\"attributes\":\"11000000000000000000000000000000\",\"attributesMask\":\"FBFFFFFFFFFFFFFF0000000000000000\","
            + "\"mrsigner\":\"DC9E2A7C6F948F17474E34A7FC43ED030F7C1563F1BABDDF6340C82E0E54A8C5\",\"isvprodid\":2,"
            + "\"tcbLevels\":\(Self.isvLevels(spec.qeLevels))}"
        func sign(_ text: String) throws -> String {
            Hex.encode(try tcbSigningKey.signature(for: Array(text.utf8), digest: .sha256).rawBigEndian(componentByteCount: 32))
        }
        let tcbBody = "{\"tcbInfo\":\(tcbInfo),\"signature\":\"\(try sign(tcbInfo))\"}"
        let qeBody = "{\"enclaveIdentity\":\(qeIdentity),\"signature\":\"\(try sign(qeIdentity))\"}"
        var rootRevoked: [(serialNumber: [UInt8], date: Date)] = []
        if spec.revokePlatformCA { rootRevoked.append((serialNumber: [2], date: notBefore)) }
        if spec.revokeTCBSigning { rootRevoked.append((serialNumber: [3], date: notBefore)) }
        let rootCRL = try CRLBuilder(thisUpdate: notBefore, nextUpdate: notAfter, revoked: rootRevoked).sign(
            issuer: root, issuerKey: .ec(rootKey))
        let pckCRL = try CRLBuilder(
            thisUpdate: notBefore, nextUpdate: notAfter, revoked: spec.revokePCK ? [(serialNumber: [0x42], date: notBefore)] : []
        ).sign(issuer: platformCA, issuerKey: .ec(platformCAKey))
        let signingChain = Array((tcbSigning.pemRepresentation + root.pemRepresentation).utf8)
        return [
            ("tcb_info.json", Array(tcbBody.utf8)), ("tcb_info_issuer_chain.pem", signingChain), ("qe_identity.json", Array(qeBody.utf8)),
            ("qe_identity_issuer_chain.pem", signingChain), ("pck_crl.der", pckCRL.der),
            ("pck_crl_issuer_chain.pem", Array((platformCA.pemRepresentation + root.pemRepresentation).utf8)),
            ("root_ca_crl.der", rootCRL.der),
        ]
    }
}

/// Quotes of one generated platform and TD, each bound to a given REPORTDATA (see
/// ``TDXTestHierarchy/quoteFactory(_:)``).
public struct TDXQuoteFactory: Sendable {
    public let spec: TDXQuoteSpec
    let attestationKey: ECPrivateKey
    /// Attestation public key ‖ certification data (QE report, its signature, auth data, PCK chain).
    let signatureTail: [UInt8]
    public let collateral: Collateral
    public let pck: Certificate

    /// A quote whose TD report carries `reportData` (64 bytes).
    public func quote(reportData: [UInt8]) throws -> [UInt8] {
        var quote: [UInt8] = []
        quote.reserveCapacity(1024 + signatureTail.count)
        func le16(_ v: UInt16) { quote += [UInt8(v & 0xff), UInt8(v >> 8)] }
        func le32(_ v: UInt32) { for i in 0..<4 { quote.append(UInt8(truncatingIfNeeded: v >> (8 * i))) } }
        // Header + body (spec §1.1–1.3).
        le16(spec.version)
        le16(2)
        le32(0x81)
        le16(0)
        le16(0)
        quote += QuoteHeader.intelQEVendorID
        quote += [UInt8](repeating: 0x5a, count: 16) + [0, 0, 0, 0]
        if spec.version == 5 {
            le16(spec.bodyType == .td15 ? 3 : 2)
            le32(UInt32(spec.bodyType.size))
        }
        quote += spec.teeTCBSVN
        quote += [UInt8](repeating: 0x33, count: 48)  // MRSEAM
        quote += spec.mrSignerSeam
        quote += spec.seamAttributes
        for i in 0..<8 { quote.append(UInt8(truncatingIfNeeded: spec.tdAttributes >> (8 * i))) }
        quote += [0xe7, 0x02, 0x06, 0, 0, 0, 0, 0]  // XFAM
        quote += spec.mrTD + spec.mrConfigID + [UInt8](repeating: 0, count: 96)  // MRTD, MRCONFIGID, MROWNER, MROWNERCONFIG
        for rtmr in spec.rtmrs { quote += rtmr }
        quote += reportData
        if spec.bodyType == .td15 {
            quote += spec.teeTCBSVN2
            quote += [UInt8](repeating: 0, count: 48)
        }
        let signature = try attestationKey.signature(for: quote, digest: .sha256).rawBigEndian(componentByteCount: 32)
        le32(UInt32(signature.count + signatureTail.count))
        quote += signature
        quote += signatureTail
        return quote
    }
}
