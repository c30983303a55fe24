import ArgumentParser
import CustosCrypto
import CustosSEV
import Foundation

/// `custos bench sev-measure`: launch digest + measurement throughput (performance goals are measured here, never
/// by timed tests).
struct SEVBenchMeasure: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sev-measure", abstract: "Time the SEV-ES expected measurement (firmware, VMSAs, MAC) over iterations.")
    @Option(name: .long, help: "OVMF image (default: a synthetic 4 MiB image with a footer).") var firmware: String?
    @Option(name: .long, help: "vCPUs.") var vcpus: Int = 4
    @Option(name: .long, help: "Iterations.") var iterations: Int = 50
    @OptionGroup var global: GlobalOptions

    struct Report: Encodable {
        let iterations: Int
        let firmwareBytes: Int
        let vcpus: Int
        let p50Milliseconds: Double
        let p99Milliseconds: Double
        let megabytesPerSecond: Double
    }

    func run() throws {
        let image = try firmware.map { try SEVFiles.read($0, what: "firmware", kind: .firmware) } ?? Self.syntheticFirmware(size: 4 << 20)
        let tik = SecretBytes([UInt8](repeating: 7, count: 16))
        var times: [Double] = []
        for _ in 0..<max(1, iterations) {
            let start = DispatchTime.now().uptimeNanoseconds
            let inputs = LaunchInputs(
                firmware: image, policy: GuestPolicy(rawValue: 7), vcpus: vcpus,
                cpuSignature: try CPUSignature(family: 25, model: 1, stepping: 1))
            let digest = try LaunchDigest(inputs)
            _ = try LaunchMeasurement.compute(
                tik: tik, version: FirmwareVersion(apiMajor: 1, apiMinor: 55, buildID: 21), policy: inputs.policy,
                launchDigest: digest.digest,
                mnonce: [UInt8](repeating: 0, count: 16))
            times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
        }
        times.sort()
        let p50 = times[times.count / 2]
        let report = Report(
            iterations: times.count, firmwareBytes: image.count, vcpus: vcpus, p50Milliseconds: p50,
            p99Milliseconds: times[min(times.count - 1, times.count * 99 / 100)],
            megabytesPerSecond: Double(image.count) / 1e6 / (p50 / 1e3))
        if global.json {
            try Output.printJSON(report)
        } else {
            print(
                String(
                    format: "sev-measure: %d iterations, %d-byte firmware, %d vCPUs: p50 %.2f ms, p99 %.2f ms, %.0f MB/s",
                    report.iterations, report.firmwareBytes, vcpus, report.p50Milliseconds, report.p99Milliseconds,
                    report.megabytesPerSecond))
        }
    }

    /// A 4 MiB image ending in an OVMF footer with an SEV-ES reset block (as the cross-check vectors' layout).
    static func syntheticFirmware(size: Int) -> [UInt8] {
        var image = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
        func guid(_ s: String) -> [UInt8] { (try? EFIGUID(s).bytes) ?? [] }
        var entry: [UInt8] = [0x04, 0xB0, 0x80, 0x00, 22, 0]
        entry += guid("00f771de-1a7e-4fcb-890e-68c77e2fb44e")
        let table = entry + [UInt8(entry.count + 18), 0] + guid("96b582de-1fb2-45f7-baea-a366c55a082d")
        let start = size - 32 - table.count
        image.replaceSubrange(start..<(start + table.count), with: table)
        return image
    }
}
