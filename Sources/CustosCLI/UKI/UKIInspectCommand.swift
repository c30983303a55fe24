import ArgumentParser
import CustosCrypto
import CustosUKI
import Foundation

/// `custos uki inspect FILE`: sections, stub, Authenticode digests, signatures, PCR 11, command line, os-release.
struct UKIInspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract:
            "Show a UKI's sections, stub version, Authenticode digests, signatures and PCR 11 prediction (exit 2 if it is not a PE image).")
    @Argument(help: "The UKI (PE/COFF) file.") var file: String
    @OptionGroup var global: GlobalOptions

    func run() throws {
        let uki = try UKIFiles.load(file)
        let report = UKIInspectReport(file: file, uki: uki)
        if global.json {
            try Output.printJSON(report)
            return
        }
        print("\(file): \(report.format) image, \(uki.image.bytes.count) bytes")
        if let stub = report.stub { print("stub:         \(stub.name) \(stub.fullVersion)") } else { print("stub:         (no .sdmagic)") }
        print("sections:")
        for s in report.sections {
            print(
                "  \(s.name.padding(toLength: 10, withPad: " ", startingAt: 0)) rva 0x\(String(s.virtualAddress, radix: 16)) vsize 0x\(String(s.virtualSize, radix: 16)) file 0x\(String(s.fileOffset, radix: 16)) raw 0x\(String(s.rawSize, radix: 16))"
            )
        }
        print("authenticode: sha256 \(report.authenticode["sha256"] ?? "")")
        print("              sha384 \(report.authenticode["sha384"] ?? "")")
        if let padded = report.authenticodeWhenSigned {
            print("  once signed (zero-padded to 8 bytes): sha256 \(padded["sha256"] ?? ""), sha384 \(padded["sha384"] ?? "")")
        }
        if report.signatures.isEmpty { print("signatures:   none") }
        for s in report.signatures {
            if let error = s.error {
                print("signature \(s.index): \(error.code): \(error.message)")
            } else {
                print(
                    "signature \(s.index): \(s.digestAlgorithm ?? "?") by \(s.subject ?? "?") (issuer \(s.issuer ?? "?"), serial \(s.serial ?? "?"))"
                )
            }
        }
        if let pcr11 = report.pcr11 {
            print("pcr11:        sha256 \(pcr11["sha256"] ?? "")")
            print("              sha384 \(pcr11["sha384"] ?? "")")
        } else {
            print("pcr11:        \(report.pcr11Error ?? "unknown")")
        }
        print("rtmr1 event:  \(report.rtmr1EventDigest)")
        if let cmdline = report.cmdline { print("cmdline:      \(cmdline)") }
        if let uname = report.uname { print("uname:        \(uname)") }
        if let os = report.osRelease?["PRETTY_NAME"] ?? report.osRelease?["NAME"] { print("os-release:   \(os)") }
    }
}

enum UKIFiles {
    /// Reads and parses a UKI: an unreadable file is an ``InputFileError`` (exit 2), a malformed one a
    /// ``PEParseError`` (exit 1).
    static func load(_ path: String) throws -> UnifiedKernelImage {
        try UnifiedKernelImage(bytes: try InputFile.read(path, kind: .uki))
    }
}
