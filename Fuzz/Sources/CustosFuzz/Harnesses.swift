import CustosCrypto
import CustosSEV
import CustosTDX
import CustosUKI
import Foundation

/// One libFuzzer harness per parser of untrusted bytes. Each one feeds the input to the parser and then exercises
/// what a caller does with a parsed value (chain extraction, replay, rendering, digests), so a trap, an ASan report
/// or a leak anywhere on those paths is a crash. Thrown errors are the expected outcome for most inputs.
///
/// The service's parsers (policy YAML, JSON, JOSE, KBS wire types, EAR tokens) are in ServiceHarnesses.swift. A new
/// parser gets a function, an entry in `harnesses` and, if it is in another target, a product in both Package.swift.
enum Harness {
    /// The harnesses by name, as `CUSTOS_FUZZ_HARNESS` and `scripts/fuzz/run.sh` name them.
    static let harnesses: [String: @Sendable ([UInt8]) -> Void] = [
        "tdx-quote": tdxQuote,
        "tdx-tcbinfo": tdxTCBInfo,
        "tdx-qeidentity": tdxQEIdentity,
        "tdx-collateral-v3": tdxCollateralV3,
        "tdx-pck-extension": tdxPCKExtension,
        "tdx-ccel-table": tdxCCELTable,
        "tdx-eventlog": tdxEventLog,
        "x509-crl": x509CRL,
        "x509-pem-chain": x509PEMChain,
        "sev-amd-cert": sevAMDCertificate,
        "sev-cert": sevCertificate,
        "sev-ovmf-footer": sevOVMFFooter,
        "uki-pe": ukiPE,
        "uki-authenticode": ukiAuthenticode,
        // ServiceHarnesses.swift
        "policy-yaml": policyYAML,
        "json-value": jsonValue,
        "jose-jwk": joseJWK,
        "jose-jws": joseJWS,
        "jose-jwe": joseJWE,
        "kbs-json": kbsJSON,
        "kbs-init-data": kbsInitData,
        "ear-token": earToken,
    ]

    // MARK: - TDX

    static func tdxQuote(_ data: [UInt8]) {
        guard let quote = try? Quote(parsing: data) else { return }
        _ = try? quote.pckCertificateChain()
        _ = quote.body.rtmrs
    }

    static func tdxTCBInfo(_ data: [UInt8]) {
        guard let info = try? TCBInfo(signedBytes: data, signature: [UInt8](repeating: 1, count: 64)) else { return }
        _ = info.moduleIdentity(majorVersion: 1)
    }

    static func tdxQEIdentity(_ data: [UInt8]) {
        _ = try? QEIdentity(signedBytes: data, signature: [UInt8](repeating: 1, count: 64))
    }

    static func tdxCollateralV3(_ data: [UInt8]) {
        _ = try? Collateral(quoteCollateralV3JSON: data)
    }

    static func tdxPCKExtension(_ data: [UInt8]) {
        _ = try? PCKExtension(der: data)
        // The same bytes as a PCK certificate (DER or PEM) whose extension is then read.
        if let certificate = try? Certificate(derOrPEM: data) { _ = try? PCKExtension(certificate: certificate) }
    }

    static func tdxCCELTable(_ data: [UInt8]) {
        _ = try? CCELTable(parsing: data)
    }

    static func tdxEventLog(_ data: [UInt8]) {
        guard let log = try? EventLog(parsing: data) else { return }
        _ = try? log.replay()
        _ = log.bootServicesApplicationDigests
        for event in log.events {
            _ = event.decodedData
            _ = event.typeName
        }
    }

    // MARK: - X.509 (CRLs and PEM chains as they arrive in collateral)

    static func x509CRL(_ data: [UInt8]) {
        _ = try? CertificateRevocationList(anyEncoding: data)
    }

    static func x509PEMChain(_ data: [UInt8]) {
        guard let chain = try? Certificate.parsePEMChain(pemBytes: data, reusing: []) else { return }
        for certificate in chain {
            _ = certificate.subject
            _ = certificate.extensions
        }
    }

    // MARK: - SEV

    static func sevAMDCertificate(_ data: [UInt8]) {
        guard let certificate = try? AMDCertificate(bytes: data) else { return }
        _ = try? certificate.verifySignature(by: certificate)
    }

    static func sevCertificate(_ data: [UInt8]) {
        guard let certificate = try? SEVCertificate(bytes: data) else { return }
        _ = try? certificate.verifySignature(by: certificate)
    }

    static func sevOVMFFooter(_ data: [UInt8]) {
        guard let footer = try? OVMFFooter(firmware: data) else { return }
        for entry in footer.entries { _ = footer.data(for: entry.guid) }
    }

    // MARK: - UKI

    static func ukiPE(_ data: [UInt8]) {
        guard let image = try? PEImage(bytes: data) else { return }
        for section in image.sections {
            _ = image.rawData(of: section)
            _ = image.mappedData(of: section, limit: 1 << 16)
        }
        _ = image.embeddedSignatures()
        _ = AuthenticodeDigest.compute(image, algorithm: .sha256)
        let uki = UnifiedKernelImage(image: image)
        _ = uki.text(".osrel")
        _ = uki.text(".cmdline")
        _ = try? uki.predictPCR11(.sha256)
    }

    static func ukiAuthenticode(_ data: [UInt8]) {
        guard let signature = try? AuthenticodeSignature(derEncoded: data) else { return }
        _ = signature.signedData.signers.count
        _ = signature.imageDigest
    }
}

/// The harness `CUSTOS_FUZZ_HARNESS` names, looked up once.
let selectedHarness: @Sendable ([UInt8]) -> Void = {
    let name = ProcessInfo.processInfo.environment["CUSTOS_FUZZ_HARNESS"] ?? ""
    guard let harness = Harness.harnesses[name] else {
        let names = Harness.harnesses.keys.sorted().joined(separator: " ")
        FileHandle.standardError.write(Data("set CUSTOS_FUZZ_HARNESS to one of: \(names)\n".utf8))
        exit(2)
    }
    return harness
}()

/// libFuzzer's initializer: with `CUSTOS_FUZZ_WRITE_SEEDS=DIR` the binary writes the seeds made with its fixed keys
/// (``Harness/writeSeeds(to:)``) and exits instead of fuzzing.
@_cdecl("LLVMFuzzerInitialize")
public func fuzzInitialize(
    _ argc: UnsafeMutablePointer<CInt>?, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>?
)
    -> CInt
{
    guard let directory = ProcessInfo.processInfo.environment["CUSTOS_FUZZ_WRITE_SEEDS"] else { return 0 }
    do {
        try Harness.writeSeeds(to: directory)
    } catch {
        FileHandle.standardError.write(Data("cannot write seeds: \(error)\n".utf8))
        exit(1)
    }
    exit(0)
}

/// libFuzzer's entry point.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    selectedHarness(bytes)
    return 0
}
