public import CustosCrypto

// MARK: - Kernel hashes table

/// QEMU's `PaddedSevHashTable` (sev.md §4.3): 176 bytes, measured after the firmware when kernel hashes are on.
///
/// | off | size | content |
/// |---|---|---|
/// | 0x00 | 16 | GUID `9438d606-4f22-4cc9-b479-a793d411fd21` |
/// | 0x10 | 2 | u16 LE length = 168 (without padding) |
/// | 0x12 | 50 | cmdline entry: GUID `97d02dd8-…`, u16 50, SHA-256(cmdline ‖ NUL) |
/// | 0x44 | 50 | initrd entry: GUID `44baf731-…`, u16 50, SHA-256(initrd) |
/// | 0x76 | 50 | kernel entry: GUID `4de79437-…`, u16 50, SHA-256(kernel) |
/// | 0xA8 | 8 | zero padding |
public enum KernelHashesTable {
    static let tableGUID = EFIGUID(constant: "9438d606-4f22-4cc9-b479-a793d411fd21")
    static let cmdlineGUID = EFIGUID(constant: "97d02dd8-bd20-4c94-aa78-e7714d36ab2a")
    static let initrdGUID = EFIGUID(constant: "44baf731-3a2f-4bd7-9af1-41e29169781d")
    static let kernelGUID = EFIGUID(constant: "4de79437-abd2-427f-b835-d5b172d2045b")
    public static let size = 176

    /// The table from the three hashes.
    public static func table(kernelSHA256: [UInt8], initrdSHA256: [UInt8], cmdlineSHA256: [UInt8]) -> [UInt8] {
        var out = tableGUID.bytes
        out.appendLE(UInt16(168))
        for (guid, hash) in [(cmdlineGUID, cmdlineSHA256), (initrdGUID, initrdSHA256), (kernelGUID, kernelSHA256)] {
            out += guid.bytes
            out.appendLE(UInt16(50))
            out += hash
        }
        out += [UInt8](repeating: 0, count: 8)
        return out
    }

    /// The table for a kernel, an optional initrd and an optional command line.
    ///
    /// A missing or empty cmdline hashes `"\0"`; a missing initrd hashes the empty string (QEMU's rules).
    public static func table(kernel: [UInt8], initrd: [UInt8]?, cmdline: String?) -> [UInt8] {
        table(
            kernelSHA256: Digest.sha256(kernel), initrdSHA256: Digest.sha256(initrd ?? []),
            cmdlineSHA256: Digest.sha256(Array((cmdline ?? "").utf8) + [0]))
    }
}

// MARK: - VMSA

/// A guest vCPU signature (CPUID(1).EAX) from family, model and stepping (sev.md §4.4).
public struct CPUSignature: Hashable, Sendable, Codable {
    public let family: Int
    public let model: Int
    public let stepping: Int

    public init(family: Int, model: Int, stepping: Int) throws(SEVError) {
        guard (0...0xFF + 0xF).contains(family), (0...0xFF).contains(model), (0...0xF).contains(stepping) else {
            throw SEVError(.invalidParameter, "CPU family \(family) model \(model) stepping \(stepping) is out of range")
        }
        self.family = family
        self.model = model
        self.stepping = stepping
    }

    /// `stepping | model[3:0] << 4 | family-or-0xF << 8 | model[7:4] << 16 | extended family << 20`.
    public var value: UInt32 {
        var sig = UInt32(stepping & 0xF) | UInt32(model & 0xF) << 4 | UInt32(model >> 4 & 0xF) << 16
        if family <= 0xF {
            sig |= UInt32(family) << 8
        } else {
            sig |= 0xF00 | UInt32(family - 0xF) << 20
        }
        return sig
    }
}

/// Which initial VMSA the host's KVM builds (sev.md §4.4 "VMSA variants").
public enum VMSAVariant: String, Sendable, Codable, CaseIterable {
    /// `KVM_SEV_ES_INIT`: MXCSR and FCW are 0. Stock QEMU/libvirt (and virt-qemu-sev-validate).
    case legacy
    /// `KVM_SEV_INIT2`: MXCSR = 0x1F80, FCW = 0x037F (sev-snp-measure `--mode seves`).
    case init2
}

/// The initial SEV-ES VMSA pages of the vCPUs (QEMU/KVM reset state; sev.md §4.4 table).
public enum VMSA {
    public static let size = 4096

    /// The VMSA of one vCPU.
    /// - Parameters:
    ///   - isBSP: vCPU 0 uses the architectural reset vector; APs use `apResetAddress`.
    ///   - apResetAddress: the SEV-ES reset address from the OVMF footer.
    ///   - signature: the guest vCPU signature (goes in RDX).
    ///   - variant: legacy or INIT2.
    ///   - sevFeatures: SEV_FEATURES (0; 0x20 on some DebugSwap hosts).
    public static func page(isBSP: Bool, apResetAddress: UInt32, signature: CPUSignature, variant: VMSAVariant, sevFeatures: UInt64 = 0)
        -> [UInt8]
    {
        var page = [UInt8](repeating: 0, count: size)
        func segment(_ offset: Int, selector: UInt16, attributes: UInt16, limit: UInt32, base: UInt64) {
            page.storeLE(UInt64(selector), at: offset, size: 2)
            page.storeLE(UInt64(attributes), at: offset + 2, size: 2)
            page.storeLE(UInt64(limit), at: offset + 4, size: 4)
            page.storeLE(base, at: offset + 8, size: 8)
        }
        let csBase: UInt64 = isBSP ? 0xFFFF_0000 : UInt64(apResetAddress & 0xFFFF_0000)
        let rip: UInt64 = isBSP ? 0xFFF0 : UInt64(apResetAddress & 0xFFFF)
        segment(0x000, selector: 0, attributes: 0x0093, limit: 0xFFFF, base: 0)  // ES
        // The CS selector stays 0xF000 on APs too; only the base moves (trap 8).
        segment(0x010, selector: 0xF000, attributes: 0x009B, limit: 0xFFFF, base: csBase)  // CS
        // SS, DS, FS, GS
        for offset in [0x020, 0x030, 0x040, 0x050] { segment(offset, selector: 0, attributes: 0x0093, limit: 0xFFFF, base: 0) }
        segment(0x060, selector: 0, attributes: 0, limit: 0xFFFF, base: 0)  // GDTR
        segment(0x070, selector: 0, attributes: 0x0082, limit: 0xFFFF, base: 0)  // LDTR
        segment(0x080, selector: 0, attributes: 0, limit: 0xFFFF, base: 0)  // IDTR
        segment(0x090, selector: 0, attributes: 0x008B, limit: 0xFFFF, base: 0)  // TR
        page.storeLE(0x1000, at: 0x0D0, size: 8)  // EFER.SVME
        page.storeLE(0x40, at: 0x148, size: 8)  // CR4.MCE
        page.storeLE(0x10, at: 0x158, size: 8)  // CR0.ET
        page.storeLE(0x400, at: 0x160, size: 8)  // DR7
        page.storeLE(0xFFFF_0FF0, at: 0x168, size: 8)  // DR6
        page.storeLE(0x2, at: 0x170, size: 8)  // RFLAGS
        page.storeLE(rip, at: 0x178, size: 8)  // RIP
        page.storeLE(0x0007_0406_0007_0406, at: 0x268, size: 8)  // G_PAT
        page.storeLE(UInt64(signature.value), at: 0x310, size: 8)  // RDX
        page.storeLE(sevFeatures, at: 0x3B0, size: 8)  // SEV_FEATURES
        page.storeLE(0x1, at: 0x3E8, size: 8)  // XCR0
        if variant == .init2 {
            page.storeLE(0x1F80, at: 0x408, size: 4)  // MXCSR
            page.storeLE(0x037F, at: 0x410, size: 2)  // X87_FCW
        }
        return page
    }
}

// MARK: - Launch digest

/// Everything that goes into the launch digest (sev.md §4.2).
public struct LaunchInputs: Sendable {
    /// The whole OVMF image QEMU encrypts (the stateless `<loader>`; never NVRAM).
    public var firmware: [UInt8]
    /// Direct kernel boot with `kernelHashes='yes'`: the bzImage as on disk.
    public var kernel: [UInt8]?
    public var initrd: [UInt8]?
    public var cmdline: String?
    public var policy: GuestPolicy
    /// SEV-ES: vCPUs present at launch.
    public var vcpus: Int
    /// SEV-ES: the guest vCPU signature.
    public var cpuSignature: CPUSignature?
    public var vmsaVariant: VMSAVariant
    public var sevFeatures: UInt64

    public init(
        firmware: [UInt8], kernel: [UInt8]? = nil, initrd: [UInt8]? = nil, cmdline: String? = nil, policy: GuestPolicy,
        vcpus: Int = 1, cpuSignature: CPUSignature? = nil, vmsaVariant: VMSAVariant = .legacy, sevFeatures: UInt64 = 0
    ) {
        self.firmware = firmware
        self.kernel = kernel
        self.initrd = initrd
        self.cmdline = cmdline
        self.policy = policy
        self.vcpus = vcpus
        self.cpuSignature = cpuSignature
        self.vmsaVariant = vmsaVariant
        self.sevFeatures = sevFeatures
    }
}

/// The expected launch digest and its parts.
public struct LaunchDigest: Sendable, Equatable {
    /// SHA-256 over firmware ‖ [kernel hashes table] ‖ [VMSAs].
    public let digest: [UInt8]
    /// The kernel hashes table, when measured.
    public let kernelHashesTable: [UInt8]?
    /// The VMSA pages, SEV-ES only (vCPU order).
    public let vmsas: [[UInt8]]

    /// Upper bound on vCPUs (KVM's limit).
    public static let maxVCPUs = 4096

    /// Computes LD = SHA-256(firmware ‖ [table] ‖ [VMSA(0) ‖ … ‖ VMSA(n-1)]). SEV-ES is selected by policy bit ES.
    /// - Throws: `.kernelHashesUnsupported` when a kernel is given and the firmware has no hashes area;
    ///   `.firmwareFooterMissing` for SEV-ES without an SEV-ES reset block; `.invalidParameter` for a missing CPU
    ///   signature or a vCPU count out of range.
    public init(_ inputs: LaunchInputs) throws(SEVError) {
        let result: Result<LaunchDigest, SEVError> = inputs.firmware.withUnsafeBytes { firmware in
            do throws(SEVError) { return .success(try LaunchDigest(core: inputs, firmware: firmware)) } catch { return .failure(error) }
        }
        self = try result.get()
    }

    /// Computes the launch digest with the firmware image given as raw bytes, such as a mapped file, so that a
    /// multi-MiB image is hashed where it lies, without copying it into an array (issue 4 "Performance").
    /// - Parameters:
    ///   - inputs: everything but the firmware; `inputs.firmware` must be empty.
    ///   - firmware: the whole OVMF image.
    /// - Throws: as ``init(_:)``, and `.invalidParameter` when `inputs.firmware` is not empty (two images).
    public init(_ inputs: LaunchInputs, firmware: UnsafeRawBufferPointer) throws(SEVError) {
        guard inputs.firmware.isEmpty else {
            throw SEVError(.invalidParameter, "give the firmware either in the inputs or as raw bytes, not both")
        }
        try self.init(core: inputs, firmware: firmware)
    }

    private init(core inputs: LaunchInputs, firmware: UnsafeRawBufferPointer) throws(SEVError) {
        var footer: OVMFFooter? = nil
        var hasher = StreamingDigest(.sha256)
        hasher.update(firmware)
        if let kernel = inputs.kernel {
            footer = try OVMFFooter(firmware: firmware)
            guard footer?.hashesArea != nil else {
                throw SEVError(
                    .kernelHashesUnsupported,
                    "the firmware has no SEV hashes area (not an AmdSev OVMF build): kernel hashes cannot be measured")
            }
            let table = KernelHashesTable.table(kernel: kernel, initrd: inputs.initrd, cmdline: inputs.cmdline)
            hasher.update(table)
            kernelHashesTable = table
        } else {
            guard inputs.initrd == nil, inputs.cmdline == nil else {
                throw SEVError(.invalidParameter, "an initrd or cmdline is only measured with a kernel (direct kernel boot)")
            }
            kernelHashesTable = nil
        }
        var pages: [[UInt8]] = []
        if inputs.policy.isEncryptedState {
            guard (1...Self.maxVCPUs).contains(inputs.vcpus) else {
                throw SEVError(.invalidParameter, "SEV-ES needs 1…\(Self.maxVCPUs) vCPUs, got \(inputs.vcpus)")
            }
            guard let signature = inputs.cpuSignature else {
                throw SEVError(.invalidParameter, "SEV-ES needs the guest CPU family, model and stepping")
            }
            let resolvedFooter: OVMFFooter
            if let footer { resolvedFooter = footer } else { resolvedFooter = try OVMFFooter(firmware: firmware) }
            guard let reset = resolvedFooter.sevESResetAddress else {
                throw SEVError(.firmwareFooterMissing, "the firmware has no SEV-ES reset block")
            }
            let bsp = VMSA.page(
                isBSP: true, apResetAddress: reset, signature: signature, variant: inputs.vmsaVariant, sevFeatures: inputs.sevFeatures)
            let ap = VMSA.page(
                isBSP: false, apResetAddress: reset, signature: signature, variant: inputs.vmsaVariant, sevFeatures: inputs.sevFeatures)
            hasher.update(bsp)
            pages.append(bsp)
            for _ in 1..<inputs.vcpus { hasher.update(ap) }
            if inputs.vcpus > 1 { pages.append(ap) }
        }
        vmsas = pages
        digest = hasher.finalize()
    }
}

// MARK: - Measurement

/// The firmware's API version and build, as LAUNCH_MEASURE's MAC covers them (libvirt `sev-api-major` …).
public struct FirmwareVersion: Hashable, Sendable, Codable {
    public let apiMajor: UInt8
    public let apiMinor: UInt8
    public let buildID: UInt8
    public init(apiMajor: UInt8, apiMinor: UInt8, buildID: UInt8) {
        self.apiMajor = apiMajor
        self.apiMinor = apiMinor
        self.buildID = buildID
    }
}

/// MEASURE = HMAC-SHA256(TIK, 0x04 ‖ API_MAJOR ‖ API_MINOR ‖ BUILD ‖ u32le(POLICY) ‖ LD ‖ MNONCE) (sev.md §4.2).
public enum LaunchMeasurement {
    /// The 56-byte message the firmware MACs.
    public static func message(version: FirmwareVersion, policy: GuestPolicy, launchDigest: [UInt8], mnonce: [UInt8]) -> [UInt8] {
        [0x04, version.apiMajor, version.apiMinor, version.buildID] + policy.littleEndianBytes + launchDigest + mnonce
    }

    /// The 32-byte MEASURE.
    public static func compute(tik: SecretBytes, version: FirmwareVersion, policy: GuestPolicy, launchDigest: [UInt8], mnonce: [UInt8])
        throws(SEVError) -> [UInt8]
    {
        guard launchDigest.count == 32, mnonce.count == 16, tik.count == 16 else {
            throw SEVError(.invalidParameter, "launch digest must be 32 bytes, mnonce 16, TIK 16")
        }
        let msg = message(version: version, policy: policy, launchDigest: launchDigest, mnonce: mnonce)
        return tik.withBytes { HMAC.authenticationCode(.sha256, key: $0, data: msg) }
    }
}

/// The outcome of checking libvirt's `sev-measurement`.
public enum MeasurementCheckResult: Sendable, Equatable {
    case verified(VerifiedMeasurement)
    case rejected(SEVError)
}

/// A LAUNCH_MEASURE output that matched the expected launch: only ``MeasurementChecker`` makes one.
public struct VerifiedMeasurement: Sendable, Equatable {
    /// The 32-byte MEASURE (what the secret header MAC covers).
    public let measure: [UInt8]
    public let mnonce: [UInt8]
    public let launchDigest: [UInt8]
    public let version: FirmwareVersion
    public let policy: GuestPolicy
}

/// Checks a LAUNCH_MEASURE output against the expected launch.
public enum MeasurementChecker {
    /// Splits libvirt's `sev-measurement` (base64 of MEASURE(32) ‖ MNONCE(16)).
    public static func decode(sevMeasurement: String) throws(SEVError) -> (measure: [UInt8], mnonce: [UInt8]) {
        let bytes: [UInt8]
        do { bytes = try Base64.decode(sevMeasurement) } catch { throw SEVError(.invalidValue, "sev-measurement is not base64") }
        guard bytes.count == 48 else {
            throw SEVError(
                bytes.count < 48 ? .truncated : .trailingBytes, "sev-measurement must be 48 bytes (MEASURE ‖ MNONCE), got \(bytes.count)",
                offset: min(bytes.count, 48))
        }
        return (Array(bytes[0..<32]), Array(bytes[32..<48]))
    }

    /// Recomputes MEASURE with the firmware's mnonce and compares it in constant time.
    public static func check(
        sevMeasurement: String, tik: SecretBytes, version: FirmwareVersion, policy: GuestPolicy, launchDigest: [UInt8]
    ) -> MeasurementCheckResult {
        do throws(SEVError) {
            let (measure, mnonce) = try decode(sevMeasurement: sevMeasurement)
            let expected = try LaunchMeasurement.compute(
                tik: tik, version: version, policy: policy, launchDigest: launchDigest, mnonce: mnonce)
            guard constantTimeEqual(expected, measure) else {
                return .rejected(
                    SEVError(
                        .signatureInvalid, "the launch measurement does not match the expected firmware, kernel, VMSAs, policy and TIK"))
            }
            return .verified(
                VerifiedMeasurement(measure: measure, mnonce: mnonce, launchDigest: launchDigest, version: version, policy: policy))
        } catch {
            return .rejected(error)
        }
    }
}
