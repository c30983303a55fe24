import ArgumentParser
import CustosCrypto
import CustosSEV
import Foundation

/// `custos sev session`: the LAUNCH_START inputs for libvirt's `<dhCert>` and `<session>`.
struct SEVSession: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "session",
        abstract: "Make a launch session with the platform's PDH: godh.b64, session.b64, and tek.bin/tik.bin (mode 0600).",
        discussion: "Verify the chain first (`custos sev verify-chain`), or pass --cert-chain to verify it here against the pinned roots.")
    @Option(name: .long, help: "PDH certificate: raw 2084 bytes or libvirt's base64 'pdh'.") var pdh: String
    @Option(name: .customLong("cert-chain"), help: "Verify the PDH first with this PEK‖OCA‖CEK (raw or base64) against the pinned roots.")
    var certChain: String?
    @OptionGroup var roots: RootsInput
    @Option(name: .long, help: "Guest policy (0x3 SEV, 0x7 SEV-ES).") var policy: String
    @Option(name: .long, help: "Output folder (created if missing).") var out: String
    @OptionGroup var global: GlobalOptions

    struct Report: Encodable {
        let godh: String
        let session: String
        let policy: String
        let files: [String]
        let generation: String?
    }

    func run() throws {
        let policy = try SEVFiles.parsePolicy(policy)
        var generation: String? = nil
        let pdhCert: SEVCertificate
        do {
            if let certChain {
                let platform = try PlatformInput.load(platform: nil, pdh: pdh, certChain: certChain)
                switch SEVChainVerifier.verify(platform, roots: try roots.load()) {
                case .verified(let chain):
                    generation = chain.productLine.name
                    pdhCert = chain.pdh
                case .rejected(let failure):
                    throw CLIError("the platform chain does not verify: \(failure)", exitCode: 1)
                }
            } else {
                pdhCert = try SEVCertificate(bytes: try SEVFiles.readRawOrBase64(pdh, rawSize: SEVCertificate.size, what: "PDH"))
            }
        } catch let error as SEVError {
            // The PDH is platform evidence: malformed is rejected (1).
            throw SEVFiles.sevError(error, exitCode: error.exitStatus)
        }
        let session: LaunchSession
        do { session = try LaunchSession.make(pdh: pdhCert, policy: policy) } catch { throw SEVFiles.sevError(error) }
        do { try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true) } catch {
            throw CLIError("cannot create \(out): \(error.localizedDescription)")
        }
        try SEVFiles.writeText(session.dhCertBase64, to: "\(out)/godh.b64")
        try SEVFiles.writeText(session.sessionBase64, to: "\(out)/session.b64")
        try session.transportKeys.tek.withBytes { try SEVFiles.writeSecret($0, to: "\(out)/tek.bin") }
        try session.transportKeys.tik.withBytes { try SEVFiles.writeSecret($0, to: "\(out)/tik.bin") }
        let files = ["godh.b64", "session.b64", "tek.bin", "tik.bin"].map { "\(out)/\($0)" }
        if global.json {
            try Output.printJSON(
                Report(
                    godh: session.dhCertBase64, session: session.sessionBase64, policy: policy.description, files: files,
                    generation: generation))
        } else {
            print("<launchSecurity type='sev'> for policy \(policy):")
            print("  <dhCert>\(session.dhCertBase64)</dhCert>")
            print("  <session>\(session.sessionBase64)</session>")
            print("wrote \(files.joined(separator: ", ")) (TEK/TIK with mode 0600; keep them off the host)")
        }
    }
}
