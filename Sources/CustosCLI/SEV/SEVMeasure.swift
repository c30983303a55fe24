import ArgumentParser
import CustosCrypto
import CustosSEV

/// `custos sev measure`: the expected launch digest, and the measurement when TIK and mnonce are given.
struct SEVMeasure: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "measure", abstract: "Compute the expected launch digest (and MEASURE with --tik and --nonce).")
    @OptionGroup var launch: LaunchOptions
    @OptionGroup var version: FirmwareVersionOptions
    @Option(name: .long, help: "TIK file (16 raw bytes).") var tik: String?
    @Option(name: .long, help: "The firmware's mnonce (16 bytes hex).") var nonce: String?
    @OptionGroup var global: GlobalOptions

    struct Report: Encodable {
        let launchDigest: String
        let measurement: String?
        let sevMeasurement: String?
    }

    func run() throws {
        let digest = try launch.digest()
        var measure: [UInt8]? = nil
        var mnonce: [UInt8]? = nil
        if tik != nil || nonce != nil {
            guard let tik, let nonce, let version = version.version else {
                throw ValidationError("the measurement needs --tik, --nonce, --api-major, --api-minor and --build-id together")
            }
            guard let decoded = try? Hex.decode(nonce), decoded.count == 16 else {
                throw ValidationError("--nonce must be 16 bytes of hex")
            }
            mnonce = decoded
            do {
                measure = try LaunchMeasurement.compute(
                    tik: try SEVFiles.readKey(tik, what: "TIK"), version: version, policy: try SEVFiles.parsePolicy(launch.policy),
                    launchDigest: digest.digest, mnonce: decoded)
            } catch let error as SEVError { throw SEVFiles.sevError(error) }
        }
        let report = Report(
            launchDigest: Hex.encode(digest.digest), measurement: measure.map { Hex.encode($0) },
            sevMeasurement: measure.flatMap { m in mnonce.map { Base64.encode(m + $0) } })
        if global.json {
            try Output.printJSON(report)
        } else {
            print("launch digest:   \(report.launchDigest)")
            if let m = report.measurement { print("measurement:     \(m)") }
            if let s = report.sevMeasurement { print("sev-measurement: \(s)") }
        }
    }
}

/// `custos sev check-measurement`: libvirt's `sev-measurement` against the expected launch, in constant time.
struct SEVCheckMeasurement: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check-measurement",
        abstract: "Check libvirt's sev-measurement against the expected firmware, kernel, VMSAs, policy and TIK.")
    @Option(name: .customLong("sev-measurement"), help: "base64 MEASURE‖MNONCE from virDomainGetLaunchSecurityInfo.") var sevMeasurement:
        String
    @Option(name: .long, help: "TIK file (16 raw bytes).") var tik: String
    @OptionGroup var launch: LaunchOptions
    @OptionGroup var version: FirmwareVersionOptions
    @OptionGroup var global: GlobalOptions

    struct Report: Encodable {
        let verified: Bool
        let launchDigest: String
        let error: SEVErrorJSON?
    }

    func run() throws {
        guard let version = version.version else {
            throw ValidationError("give --api-major, --api-minor and --build-id (sev-api-major/minor, sev-build-id)")
        }
        let digest = try launch.digest()
        let policy = try SEVFiles.parsePolicy(launch.policy)
        let result = MeasurementChecker.check(
            sevMeasurement: sevMeasurement, tik: try SEVFiles.readKey(tik, what: "TIK"), version: version, policy: policy,
            launchDigest: digest.digest)
        switch result {
        case .verified:
            if global.json {
                try Output.printJSON(Report(verified: true, launchDigest: Hex.encode(digest.digest), error: nil))
            } else {
                print("verified: the launch measurement matches (launch digest \(Hex.encode(digest.digest)))")
            }
        case .rejected(let error):
            if global.json {
                try Output.printJSON(Report(verified: false, launchDigest: Hex.encode(digest.digest), error: SEVErrorJSON(error)))
            } else {
                print("NOT verified: \(error)")
            }
            throw ExitCode(1)
        }
    }
}
