public import CustosAnchors
public import CustosCrypto
public import CustosSEV
public import CustosServer
public import CustosTDX
public import CustosUKI
import Foundation

// The library error types under the one error contract (ErrorContract.swift): their code names, reasons, fields
// and offsets as they are, and an exit status. Evidence that was checked and rejected — malformed evidence included —
// exits 1; input Custos could not use (a missing parameter, missing trust anchors, an internal failure) exits 2.

extension TDXError: CustosReportableError {
    public var errorCode: String { code.name }
    public var errorMessage: String { reason }
    public var errorField: String? { field }
    public var errorOffset: Int? { offset }
    public var exitStatus: Int32 { 1 }
}

extension SEVError: CustosReportableError {
    public var errorCode: String { code.name }
    public var errorMessage: String { reason }
    public var errorOffset: Int? { offset }
    /// Malformed or forged certificates and chains are rejected evidence (1); a parameter out of range, firmware
    /// without the areas a launch needs, a secret too large or an OpenSSL failure are input Custos could not use (2).
    public var exitStatus: Int32 {
        let unusable: [Code] = [.invalidParameter, .firmwareFooterMissing, .kernelHashesUnsupported, .secretTooLarge, .cryptoFailure]
        return unusable.contains(code) ? 2 : 1
    }
}

extension UKIError: CustosReportableError {
    public var errorCode: String { code.name }
    public var errorMessage: String { reason }
    public var exitStatus: Int32 { code == .noTrustAnchors ? 2 : 1 }
}

extension PEParseError: CustosReportableError {
    /// `malformedImage` with the parser's status (`truncated`, `lengthOverflow`, …) in the message.
    public var errorCode: String { "malformedImage" }
    public var errorMessage: String { "\(status): \(reason)" }
    public var errorOffset: Int? { offset }
    public var exitStatus: Int32 { 1 }
}

extension CryptoError: CustosReportableError {
    public var errorCode: String { code.name }
    public var errorMessage: String { description }
    public var errorField: String? { certificate }
    public var exitStatus: Int32 { code == .internalFailure || code == .invalidParameter ? 2 : 1 }
}

extension AnchorError: CustosReportableError {
    public var errorCode: String { code.name }
    public var errorMessage: String { reason }
    /// Every anchor problem leaves Custos without trust anchors it can use.
    public var exitStatus: Int32 { 2 }
}

extension TDXCollateralFetcher.FetchError: CustosReportableError {
    public var errorCode: String { code.description }
    public var errorMessage: String { message }
    /// The collateral source, not the user, is at fault (as the fetch command documents).
    public var exitStatus: Int32 { 1 }
}

extension ErrorJSON {
    /// The contract's fields of any reportable error.
    init(_ error: any CustosReportableError) {
        self.init(code: error.errorCode, message: error.errorMessage, field: error.errorField, offset: error.errorOffset)
    }

    /// `{"error": {…}}` as one JSON text (sorted keys), what `--json` prints for an error.
    var envelopeText: String {
        let data = (try? Output.encoder().encode(["error": self])) ?? Data(#"{"error": {"code": "internalError", "message": ""}}"#.utf8)
        return String(decoding: data, as: UTF8.self)
    }
}
