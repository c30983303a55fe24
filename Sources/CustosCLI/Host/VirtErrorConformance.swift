public import CustosVirt

// CustosVirt's error under the CLI's error contract (ErrorContract.swift): a refusal of a domain is a rejected
// launch (exit 1); libvirt failures, malformed capabilities and invalid specs are input Custos could not use (exit 2).
extension VirtError: CustosReportableError {
    public var errorCode: String { code.name }
    public var errorMessage: String { description }
    public var errorField: String? { field }
    public var exitStatus: Int32 { isRefusal ? 1 : 2 }
}
