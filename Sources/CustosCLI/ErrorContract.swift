/// The one error contract of every `custos` command (issue 9).
///
/// Exit 0 = verified/ok, 1 = evidence checked and rejected (malformed evidence included), 2 = usage error or input
/// Custos could not use (missing or unreadable file, missing trust anchors). Under `--json`, stdout holds exactly one
/// object, for errors too: `{"error": {"code", "message", "field"?, "offset"?}}`; stderr gets the human line.
///
/// Every error a command throws conforms (directly, or through an extension in CustosCLI for library error types);
/// the top-level handler in `CustosCommand.runMain()` prints and exits from these four values.
public protocol CustosReportableError: Error {
    /// A stable lowerCamelCase code scripts can match (`quoteMalformed`, `policyDenied`, `fileNotFound`, …).
    var errorCode: String { get }
    /// One human-readable line.
    var errorMessage: String { get }
    /// The input field concerned, when there is one (`tcbInfo.tcbLevels[3]`, `policies/tdx.yaml:12:5`).
    var errorField: String? { get }
    /// The byte offset in the input, when there is one.
    var errorOffset: Int? { get }
    /// 1 for rejected evidence, 2 for usage or unusable input.
    var exitStatus: Int32 { get }
}

extension CustosReportableError {
    public var errorField: String? { nil }
    public var errorOffset: Int? { nil }
}
