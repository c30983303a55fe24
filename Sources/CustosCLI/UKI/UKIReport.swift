import CustosCrypto
import CustosUKI
import Foundation

/// The JSON shapes of `custos uki inspect` and `custos uki verify`.
struct UKIInspectReport: Encodable {
    struct Section: Encodable {
        let name: String
        let virtualAddress: UInt32
        let virtualSize: UInt32
        let fileOffset: UInt32
        let rawSize: UInt32
    }
    struct Stub: Encodable {
        let name: String
        let version: String?
        let fullVersion: String
    }
    struct Signature: Encodable {
        let index: Int
        let digestAlgorithm: String?
        let subject: String?
        let issuer: String?
        let serial: String?
        let signedDigest: String?
        let error: UKIErrorReport?
    }

    let file: String
    let format: String
    let sections: [Section]
    let stub: Stub?
    let authenticode: [String: String]
    /// The digest the image will have once signed (differs only for unsigned files of unaligned size).
    let authenticodeWhenSigned: [String: String]?
    let signatures: [Signature]
    let pcr11: [String: String]?
    let pcr11Error: String?
    let rtmr1EventDigest: String
    let cmdline: String?
    let osRelease: [String: String]?
    let uname: String?

    init(file: String, uki: UnifiedKernelImage) {
        self.file = file
        let image = uki.image
        format = image.optionalHeader.format.rawValue
        sections = image.sections.map {
            Section(
                name: $0.name, virtualAddress: $0.virtualAddress, virtualSize: $0.virtualSize, fileOffset: $0.pointerToRawData,
                rawSize: $0.sizeOfRawData)
        }
        stub = uki.stub.map { Stub(name: $0.name, version: $0.majorVersion.map(String.init), fullVersion: $0.fullVersion) }
        let digests = AuthenticodeDigest.compute(image, algorithms: [.sha256, .sha384])
        authenticode = digests.reduce(into: [:]) { $0[$1.key.rawValue] = $1.value.hexString }
        if !image.isSigned && image.bytes.count % 8 != 0 {
            let padded = AuthenticodeDigest.compute(image, algorithms: [.sha256, .sha384], padding: .signingAlignment)
            authenticodeWhenSigned = padded.reduce(into: [:]) { $0[$1.key.rawValue] = $1.value.hexString }
        } else {
            authenticodeWhenSigned = nil
        }
        signatures = image.embeddedSignatures().enumerated().map { index, result in
            switch result {
            case .success(let signature):
                let signer = signature.authenticode.signedData.signers.first
                return Signature(
                    index: index, digestAlgorithm: signature.digestAlgorithm.rawValue, subject: signature.signerCertificate?.subject,
                    issuer: signer?.issuer, serial: signer?.serialNumber.hexString,
                    signedDigest: signature.authenticode.imageDigest.hexString,
                    error: nil)
            case .failure(let error):
                return Signature(
                    index: index, digestAlgorithm: nil, subject: nil, issuer: nil, serial: nil, signedDigest: nil,
                    error: UKIErrorReport(error))
            }
        }
        do {
            pcr11 = [
                "sha256": try uki.predictPCR11(.sha256).hexString,
                "sha384": try uki.predictPCR11(.sha384).hexString,
            ]
            pcr11Error = nil
        } catch {
            pcr11 = nil
            pcr11Error = error.description
        }
        rtmr1EventDigest = digests[.sha384]?.hexString ?? ""
        cmdline = uki.cmdline
        osRelease = uki.osRelease
        uname = uki.uname
    }
}

struct UKIErrorReport: Encodable {
    let code: String
    let message: String
    init(_ error: UKIError) {
        code = error.code.name
        message = error.reason
    }
    init(code: String, message: String) {
        self.code = code
        self.message = message
    }
}

struct UKIVerifyReport: Encodable {
    struct Signer: Encodable {
        let signatureIndex: Int
        let digestAlgorithm: String
        let subject: String
        let issuer: String
        let serial: String
        let chain: [String]
    }

    let file: String
    let verified: Bool
    let signer: Signer?
    let authenticode: [String: String]?
    let error: UKIErrorReport?
    /// Every signature's failure, when not verified.
    let failures: [String]
}
