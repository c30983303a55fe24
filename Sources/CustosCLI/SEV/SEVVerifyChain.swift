import ArgumentParser
import CustosCrypto
import CustosSEV

/// `custos sev verify-chain`: PDH ← PEK ← CEK ← ASK ← ARK and PEK ← OCA, with product-line detection.
struct SEVVerifyChain: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify-chain",
        abstract: "Verify a platform's SEV certificate chain against the pinned AMD roots and name its product line.")
    @OptionGroup var platform: PlatformInput
    @OptionGroup var roots: RootsInput
    @Option(name: .customLong("pinned-oca"), help: "For an externally owned platform: your OCA certificate; the platform's must equal it.")
    var pinnedOCA: String?
    @OptionGroup var global: GlobalOptions

    struct Report: Encodable {
        let verified: Bool
        let generation: String?
        let error: SEVErrorJSON?
        let pdhSHA256: String?
    }

    func run() throws {
        let certificates = try platform.load()
        let rootList = try roots.load()
        var oca: SEVCertificate? = nil
        if let pinnedOCA {
            do { oca = try SEVCertificate(bytes: try SEVFiles.read(pinnedOCA, what: "OCA", kind: .certificate)) } catch let error
                as SEVError
            {
                throw SEVFiles.sevError(error)
            }
        }
        let result = SEVChainVerifier.verify(certificates, roots: rootList, pinnedOCA: oca)
        switch result {
        case .verified(let chain):
            let report = Report(
                verified: true, generation: chain.productLine.name, error: nil, pdhSHA256: Hex.encode(chain.pdh.displayHash))
            if global.json {
                try Output.printJSON(report)
            } else {
                print("verified: PDH ← PEK ← CEK ← ASK ← ARK and PEK ← OCA")
                print("product line: \(chain.productLine)")
                print("ARK  \(Hex.encode(chain.roots.ark.displayHash))")
                print("ASK  \(Hex.encode(chain.roots.ask.displayHash))")
                print("PDH  \(Hex.encode(chain.pdh.displayHash))")
            }
        case .rejected(let failure):
            let report = Report(verified: false, generation: nil, error: SEVErrorJSON(failure.error, link: failure.link), pdhSHA256: nil)
            if global.json { try Output.printJSON(report) } else { print("NOT verified: \(failure)") }
            throw ExitCode(1)
        }
    }
}
