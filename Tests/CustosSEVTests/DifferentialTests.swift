import CustosCrypto
import CustosSEV
import CustosTestSupport
import Foundation
import Testing

let virtQemuSevValidate = "/usr/bin/virt-qemu-sev-validate"
let virtQemuSevValidateInstalled = FileManager.default.isExecutableFile(atPath: virtQemuSevValidate)

/// Debian's `virt-qemu-sev-validate` (package libvirt-clients-qemu) is the oracle: for random launches, it must
/// accept every measurement Custos computes ("OK: Looks good to me", exit 0), and refuse a tampered one.
@Suite(
    "Differential: virt-qemu-sev-validate accepts Custos measurements",
    Requirement.skipOrFail(
        unless: virtQemuSevValidateInstalled, "install libvirt-clients-qemu python3-libvirt python3-lxml python3-cryptography"))
struct DifferentialTests {
    static let tool = virtQemuSevValidate

    struct Case {
        var inputs: LaunchInputs
        var tik: [UInt8]
        var nonce: [UInt8]
        var version: FirmwareVersion
    }

    static func randomCase(_ rng: inout some RandomNumberGenerator) throws -> Case {
        func bytes(_ n: Int) -> [UInt8] { (0..<n).map { _ in UInt8.random(in: 0...255, using: &rng) } }
        // A firmware image of random content and size ending in an OVMF footer (reset block, hashes, secret).
        var firmware = bytes(Int.random(in: 1...6, using: &rng) * 4096)
        func guid(_ s: String) -> [UInt8] { (try? EFIGUID(s).bytes) ?? [] }
        func le32(_ v: UInt32) -> [UInt8] { [UInt8(v & 0xff), UInt8(v >> 8 & 0xff), UInt8(v >> 16 & 0xff), UInt8(v >> 24)] }
        func entry(_ data: [UInt8], _ g: String) -> [UInt8] { data + [UInt8(data.count + 18), 0] + guid(g) }
        let reset = UInt32.random(in: 0x0080_0000...0x00FF_FFF0, using: &rng)
        let entries =
            entry(le32(0x810000) + le32(0xC00), "4c2eb361-7d9b-4cc3-8081-127c90d3d294")
            + entry(le32(0x810C00) + le32(0x400), "7255371f-3a3b-4b04-927b-1da6efa8d454")
            + entry(le32(reset), "00f771de-1a7e-4fcb-890e-68c77e2fb44e")
        let table = entries + [UInt8(entries.count + 18), 0] + guid("96b582de-1fb2-45f7-baea-a366c55a082d")
        let start = firmware.count - 32 - table.count
        firmware.replaceSubrange(start..<(start + table.count), with: table)

        let hasKernel = Bool.random(using: &rng)
        let es = Bool.random(using: &rng)
        let policy = (es ? 0x7 : 0x3) | UInt32([0, 0x8, 0x30].randomElement(using: &rng) ?? 0)
        let cmdline = hasKernel && Bool.random(using: &rng) ? "console=ttyS0 root=/dev/vda\(Int.random(in: 1...9, using: &rng)) quiet" : nil
        let family = [23, 25, 26].randomElement(using: &rng) ?? 25
        return Case(
            inputs: LaunchInputs(
                firmware: firmware, kernel: hasKernel ? bytes(Int.random(in: 1...5000, using: &rng)) : nil,
                initrd: hasKernel && Bool.random(using: &rng) ? bytes(Int.random(in: 1...3000, using: &rng)) : nil,
                cmdline: cmdline, policy: GuestPolicy(rawValue: policy), vcpus: es ? Int.random(in: 1...4, using: &rng) : 1,
                cpuSignature: try CPUSignature(
                    family: family, model: Int.random(in: 0...255, using: &rng), stepping: Int.random(in: 0...15, using: &rng))),
            tik: bytes(16), nonce: bytes(16),
            version: FirmwareVersion(
                apiMajor: UInt8.random(in: 0...1, using: &rng), apiMinor: UInt8.random(in: 0...60, using: &rng),
                buildID: UInt8.random(in: 0...255, using: &rng)))
    }

    /// Runs the tool; returns its exit status and output.
    static func validate(_ c: Case, measurement: String, in dir: URL) throws -> (Int32, String) {
        func write(_ name: String, _ bytes: [UInt8]) throws -> String {
            let url = dir.appendingPathComponent(name)
            try Data(bytes).write(to: url)
            return url.path
        }
        var args = [
            tool, "--measurement", measurement, "--api-major", "\(c.version.apiMajor)", "--api-minor", "\(c.version.apiMinor)",
            "--build-id", "\(c.version.buildID)", "--policy", "\(c.inputs.policy.rawValue)", "--firmware",
            try write("fw.fd", c.inputs.firmware),
            "--tik", try write("tik.bin", c.tik), "--tek", try write("tek.bin", [UInt8](repeating: 0x5A, count: 16)),
        ]
        if let kernel = c.inputs.kernel { args += ["--kernel", try write("vmlinuz", kernel)] }
        if let initrd = c.inputs.initrd { args += ["--initrd", try write("initrd", initrd)] }
        if let cmdline = c.inputs.cmdline { args += ["--cmdline", cmdline] }
        if c.inputs.policy.isEncryptedState, let sig = c.inputs.cpuSignature {
            args += [
                "--num-cpus", "\(c.inputs.vcpus)", "--cpu-family", "\(sig.family)", "--cpu-model", "\(sig.model)", "--cpu-stepping",
                "\(sig.stepping)",
            ]
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        process.arguments = args
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: output, as: UTF8.self))
    }

    @Test("random launches: SEV/SEV-ES, kernel/initrd/cmdline, vCPUs, CPU signature, TIK, nonce, API version")
    func randomLaunches() throws {
        var rng = SeededRandom("SEV DifferentialTests.randomLaunches")
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("custos-sev-diff-\(UInt64.random(in: 0...UInt64.max))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        for iteration in 0..<12 {
            let c = try Self.randomCase(&rng)
            let digest = try LaunchDigest(c.inputs)
            let measure = try LaunchMeasurement.compute(
                tik: SecretBytes(c.tik), version: c.version, policy: c.inputs.policy, launchDigest: digest.digest, mnonce: c.nonce)
            let (status, output) = try Self.validate(c, measurement: Base64.encode(measure + c.nonce), in: dir)
            #expect(status == 0, "iteration \(iteration) policy \(c.inputs.policy) vcpus \(c.inputs.vcpus): \(output)")
            if iteration < 3 {
                // The oracle must be able to say no: a measurement for one more byte of firmware is refused.
                var tampered = c.inputs
                tampered.firmware[0] ^= 1
                let wrong = try LaunchMeasurement.compute(
                    tik: SecretBytes(c.tik), version: c.version, policy: c.inputs.policy, launchDigest: try LaunchDigest(tampered).digest,
                    mnonce: c.nonce)
                let (badStatus, _) = try Self.validate(c, measurement: Base64.encode(wrong + c.nonce), in: dir)
                #expect(badStatus != 0)
            }
        }
    }
}
