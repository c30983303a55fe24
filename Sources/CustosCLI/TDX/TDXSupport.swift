import CustosAnchors
public import CustosCrypto
public import CustosTDX
public import Foundation

/// Loads TDX collateral from files (the CLI's side of the pure `CustosTDX` API).
public enum TDXCollateralLoader {
    /// The PCS directory layout (spec §3, issue 3).
    public static let pcsFiles = [
        "tcb_info.json", "tcb_info_issuer_chain.pem", "qe_identity.json", "qe_identity_issuer_chain.pem", "pck_crl.der",
        "pck_crl_issuer_chain.pem", "root_ca_crl.der",
    ]

    /// Loads collateral from a PCS-layout directory or a `QuoteCollateralV3` JSON file.
    /// - Throws: ``TDXError`` (``TDXError/Code/malformedCollateral``) or a file error.
    public static func load(path: String) throws -> Collateral {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw CLIError("collateral not found: \(path)", code: InputFileError.Code.fileNotFound.rawValue, field: path)
        }
        let url = URL(fileURLWithPath: path)
        if isDirectory.boolValue {
            let has = pcsFiles.allSatisfy { FileManager.default.fileExists(atPath: url.appendingPathComponent($0).path) }
            if !has, FileManager.default.fileExists(atPath: url.appendingPathComponent("collateral.json").path) {
                return try Collateral(quoteCollateralV3JSON: read(url.appendingPathComponent("collateral.json")))
            }
            func file(_ name: String) throws -> [UInt8] { try read(url.appendingPathComponent(name)) }
            func text(_ name: String) throws -> String { String(decoding: try file(name), as: UTF8.self) }
            return try Collateral(
                tcbInfoBody: file("tcb_info.json"), tcbInfoIssuerChain: text("tcb_info_issuer_chain.pem"),
                qeIdentityBody: file("qe_identity.json"), qeIdentityIssuerChain: text("qe_identity_issuer_chain.pem"),
                pckCRL: file("pck_crl.der"), pckCRLIssuerChain: text("pck_crl_issuer_chain.pem"), rootCACRL: file("root_ca_crl.der"))
        }
        return try Collateral(quoteCollateralV3JSON: read(url))
    }

    static func read(_ url: URL) throws -> [UInt8] { try InputFile.read(url.path, kind: .collateral) }
}

/// Reads a file for a command through the CLI's one reader; a missing, unreadable or oversized file is an
/// ``InputFileError`` (exit 2).
func readInputFile(_ path: String, kind: InputKind) throws(InputFileError) -> [UInt8] { try InputFile.read(path, kind: kind) }

/// `--collateral` for a command: collateral that does not load is input Custos could not use (exit 2, with the
/// loader's code), the same for every command that takes it.
func loadCollateralInput(_ path: String) throws -> Collateral {
    do { return try TDXCollateralLoader.load(path: path) } catch let error as TDXError {
        throw CLIError("collateral \(path): \(error)", code: error.code.name, field: error.field ?? path, offset: error.offset)
    }
}

/// The trust anchor: `--root PEM` or the pinned Intel SGX Root CA.
struct TDXTrustAnchor {
    let certificate: Certificate
    /// `nil` for the pinned Intel root; otherwise the `--root` path.
    let customPath: String?

    static func load(root: String?) throws -> TDXTrustAnchor {
        if let root {
            do {
                return TDXTrustAnchor(certificate: try Certificate(derOrPEM: readInputFile(root, kind: .certificate)), customPath: root)
            } catch let error
                as InputFileError
            {
                throw error
            } catch { throw CLIError("--root \(root): \(error)", code: "untrustedRoot") }
        }
        do {
            return TDXTrustAnchor(certificate: try AnchorStore(directory: AnchorStore.locateDirectory()).intelRootCA(), customPath: nil)
        } catch {
            throw CLIError("the pinned Intel SGX Root CA is not available (\(error)); run `custos certs install` or pass --root")
        }
    }

    var label: String {
        customPath.map { "custom root \($0) (sha256 \(Hex.encode(certificate.fingerprintSHA256)))" } ?? "pinned Intel SGX Root CA"
    }
}

/// Parses `--at` (ISO 8601, or seconds since the epoch).
func parseVerificationTime(_ text: String?) throws -> Date {
    guard let text else { return Date() }
    if let seconds = Double(text) {
        // Finite and within years 0…9999 (OpenSSL takes the time as a time_t; NaN or ∞ trapped in the conversion).
        guard seconds.isFinite, (-62_135_596_800...253_402_300_799).contains(seconds) else {
            throw CLIError("--at \(text) is not a time between the years 1 and 9999", code: "usage", field: "at")
        }
        return Date(timeIntervalSince1970: seconds)
    }
    let formatter = ISO8601DateFormatter()
    if let date = formatter.date(from: text) { return date }
    formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
    if let date = formatter.date(from: text) { return date }
    throw CLIError("--at \(text) is not an ISO 8601 time (e.g. 2025-07-01T00:00:00Z)")
}

// MARK: - JSON shapes

/// The TD claims of a quote, hex-encoded.
public struct TDClaimsJSON: Codable, Sendable, Equatable {
    public let mrtd, rtmr0, rtmr1, rtmr2, rtmr3, reportData: String
    public let mrConfigId, mrOwner, mrOwnerConfig, tdAttributes, xfam, mrSeam, mrSignerSeam, seamAttributes, teeTcbSvn: String
    public let teeTcbSvn2: String?
    public let mrServiceTd: String?
    public let debug: Bool

    public init(_ td: TDReport) {
        mrtd = Hex.encode(td.mrTD)
        rtmr0 = Hex.encode(td.rtmrs[0])
        rtmr1 = Hex.encode(td.rtmrs[1])
        rtmr2 = Hex.encode(td.rtmrs[2])
        rtmr3 = Hex.encode(td.rtmrs[3])
        reportData = Hex.encode(td.reportData)
        mrConfigId = Hex.encode(td.mrConfigID)
        mrOwner = Hex.encode(td.mrOwner)
        mrOwnerConfig = Hex.encode(td.mrOwnerConfig)
        tdAttributes = Hex.encode(td.tdAttributes)
        xfam = Hex.encode(td.xfam)
        mrSeam = Hex.encode(td.mrSeam)
        mrSignerSeam = Hex.encode(td.mrSignerSeam)
        seamAttributes = Hex.encode(td.seamAttributes)
        teeTcbSvn = Hex.encode(td.teeTCBSVN)
        teeTcbSvn2 = td.teeTCBSVN2.map { Hex.encode($0) }
        mrServiceTd = td.mrServiceTD.map { Hex.encode($0) }
        debug = td.isDebug
    }
}

/// The PCK SGX extension, hex-encoded.
public struct PCKJSON: Codable, Sendable, Equatable {
    public let fmspc, pceId, cpuSvn, ppid: String
    public let pceSvn, sgxType: Int
    public let tcbComponents: [Int]

    init(_ pck: PCKExtension) {
        fmspc = Hex.encode(pck.fmspc).uppercased()
        pceId = Hex.encode(pck.pceID)
        cpuSvn = Hex.encode(pck.cpuSVN)
        ppid = Hex.encode(pck.ppid)
        pceSvn = pck.pceSVN
        sgxType = pck.sgxType
        tcbComponents = pck.tcbComponents
    }
}

/// A quote's parsed fields.
public struct QuoteJSON: Codable, Sendable, Equatable {
    public let version: Int
    public let bodyType: String
    public let teeType: String
    public let fmspc: String?
    public let qeVendorId: String
    public let userData: String
    public let length: Int
    public let signedLength: Int
    public let signatureDataLength: Int
    public let qeIsvSvn: Int
    public let qeAuthDataLength: Int
    public let certificationDataType: Int
    public let pck: PCKJSON?
    /// The PCK CA that issued the PCK certificate (`platform` or `processor`, by the CA's name; not verified here): it
    /// picks the PCK CRL (`custos tdx collateral fetch --ca`).
    public let pckCa: String?
    public let pckChainError: String?
    public let td: TDClaimsJSON

    init(_ quote: Quote) {
        version = quote.version
        bodyType = quote.body.bodyType.rawValue
        teeType = "0x" + String(quote.header.teeType, radix: 16)
        qeVendorId = Hex.encode(quote.header.qeVendorID)
        userData = Hex.encode(quote.header.userData)
        length = quote.length
        signedLength = quote.signedRegion.count
        signatureDataLength = quote.signatureDataLength
        qeIsvSvn = Int(quote.qeReport.isvSVN)
        qeAuthDataLength = quote.qeAuthData.count
        certificationDataType = Int(quote.innerCertificationDataType)
        var pck: PCKJSON? = nil
        var pckCA: String? = nil
        var pckError: String? = nil
        do {
            let chain = try quote.pckCertificateChain()
            if let leaf = chain.first(where: { ($0.commonName ?? "").contains("SGX PCK Certificate") }) {
                pck = PCKJSON(try PCKExtension(certificate: leaf))
                pckCA = PCKCertificateAuthority(commonName: chain.first { leaf.isSigned(by: $0) }?.commonName)?.rawValue
            } else {
                pckError = "no SGX PCK Certificate in the chain"
            }
        } catch { pckError = error.description }
        self.pck = pck
        pckCa = pckCA
        pckChainError = pckError
        fmspc = pck?.fmspc
        td = TDClaimsJSON(quote.body)
    }
}

/// `{"code", "message", "field"?, "offset"?}`.
public struct ErrorJSON: Codable, Sendable, Equatable {
    public let code: String
    public let message: String
    public let field: String?
    public let offset: Int?

    init(code: String, message: String, field: String?, offset: Int?) {
        self.code = code
        self.message = message
        self.field = field
        self.offset = offset
    }

    init(_ error: TDXError) {
        code = error.code.name
        message = error.reason
        field = error.field
        offset = error.offset
    }
}

/// The output of `custos tdx verify --json`.
public struct VerifyJSON: Codable, Sendable, Equatable {
    public let verified: Bool
    public let tcbStatus: String?
    public let advisoryIDs: [String]
    public let platformStatus: String?
    public let moduleStatus: String?
    public let qeStatus: String?
    public let tcbDate: String?
    public let collateralExpiry: String?
    public let verifiedAt: String
    public let trustAnchor: String
    public let error: ErrorJSON?
    public let quote: QuoteJSON?
    /// The verifier's diagnostics, in order: every check that passed, then the verdict.
    public let checks: [CheckJSON]
}

/// One ``VerificationDiagnostic``: its stable name and a readable line.
public struct CheckJSON: Codable, Sendable, Equatable {
    public let check: String
    public let detail: String

    init(_ diagnostic: VerificationDiagnostic) {
        check = diagnostic.name
        detail = diagnostic.description
    }
}
