import ArgumentParser
import CustosCrypto
import CustosUKI
import Foundation

/// `custos uki verify FILE --cert PEM…`: the UEFI db check. Exit 0 only when a signature verifies.
struct UKIVerifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Check a UKI's Authenticode signature against trusted certificates as UEFI's db check does.",
        discussion:
            "Exit status: 0 verified, 1 not verified (unsigned, tampered, untrusted signer, malformed image), 2 bad usage, an unreadable file or an unusable certificate."
    )
    @Argument(help: "The UKI (PE/COFF) file.") var file: String
    @Option(name: .long, help: "A trusted certificate (PEM or DER; a PEM file may hold several). Repeatable.") var cert: [String] = []
    @OptionGroup var global: GlobalOptions

    func validate() throws {
        if cert.isEmpty { throw ValidationError("give at least one --cert") }
    }

    func run() throws {
        var anchors: [Certificate] = []
        for path in cert {
            let bytes = try InputFile.read(path, kind: .certificate, what: "certificate")
            do {
                let text = String(decoding: bytes, as: UTF8.self)
                anchors += text.contains("-----BEGIN") ? try Certificate.parsePEMChain(text) : [try Certificate(derOrPEM: bytes)]
            } catch {
                // An unusable trust anchor is input Custos could not use (2), not a rejected image.
                throw CLIError("cannot use certificate \(path): \(error)", code: "malformedCertificate", field: path)
            }
        }
        let report = try Self.verify(file: file, anchors: anchors)
        if global.json {
            try Output.printJSON(report)
        } else if report.verified, let signer = report.signer {
            print("\(file): verified (signature \(signer.signatureIndex), \(signer.digestAlgorithm), signer \(signer.subject))")
        } else {
            print("\(file): NOT verified: \(report.error.map { "\($0.code): \($0.message)" } ?? "")")
            for failure in report.failures.dropFirst() { print("  also: \(failure)") }
        }
        if !report.verified { throw ExitCode(1) }
    }

    /// Verifies the UKI at `file`.
    /// - Throws: ``InputFileError`` when the file cannot be read (exit 2); a malformed image is a rejected report.
    static func verify(file: String, anchors: [Certificate]) throws(InputFileError) -> UKIVerifyReport {
        let bytes = try InputFile.read(file, kind: .uki)
        let image: PEImage
        do { image = try PEImage(bytes: bytes) } catch {
            let failure = UKIError(.malformedImage, error.description)
            return UKIVerifyReport(
                file: file, verified: false, signer: nil, authenticode: nil, error: UKIErrorReport(failure), failures: [failure.description]
            )
        }
        switch AuthenticodeVerifier(trustAnchors: anchors).verify(image) {
        case .verified(let verified):
            let leaf = verified.signer
            let signer = UKIVerifyReport.Signer(
                signatureIndex: verified.signatureIndex, digestAlgorithm: verified.digestAlgorithm.rawValue, subject: leaf?.subject ?? "",
                issuer: leaf?.issuer ?? "", serial: leaf?.serialNumber.hexString ?? "", chain: verified.chain.certificates.map(\.subject))
            return UKIVerifyReport(
                file: file, verified: true, signer: signer,
                authenticode: [verified.digestAlgorithm.rawValue: verified.imageDigest.hexString],
                error: nil, failures: [])
        case .rejected(let failures):
            // Report the most telling failure: a tampered image over an untrusted one over a parse problem.
            let order: [UKIError.Code] = [.digestMismatch, .signatureInvalid, .untrustedSigner, .unsupportedAlgorithm, .malformedSignature]
            let main = failures.min {
                (order.firstIndex(of: $0.error.code) ?? order.count) < (order.firstIndex(of: $1.error.code) ?? order.count)
            }
            return UKIVerifyReport(
                file: file, verified: false, signer: nil, authenticode: nil, error: main.map { UKIErrorReport($0.error) },
                failures: failures.map(\.description))
        }
    }
}
