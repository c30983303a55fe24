public import CustosCrypto
public import CustosUKI
public import Foundation

/// The refusals a launch makes before anything starts (issue 12 §1): each throws a ``VirtError`` whose code names
/// the reason, so nothing is defined on the host for a domain Custos will not run.
public enum LaunchChecks {
    /// Checks a domain against the host.
    /// - Parameters:
    ///   - spec: the domain.
    ///   - capabilities: the host's domain capabilities.
    ///   - running: confidential guests already running (the ASID limits count them).
    /// - Throws: ``VirtError`` with ``VirtError/Code/firmwareNotUEFI``, ``VirtError/Code/teeUnavailable``,
    ///   ``VirtError/Code/sevESUnavailable``, ``VirtError/Code/asidLimitReached``,
    ///   ``VirtError/Code/firmwareUnsuitable``, ``VirtError/Code/virtioMemRefused``,
    ///   ``VirtError/Code/mediatedDeviceRefused`` or ``VirtError/Code/balloonWithoutIOMMU``.
    public static func check(_ spec: DomainSpec, capabilities: DomainCapabilities, running: RunningGuests = .none) throws(VirtError) {
        if let boot = spec.directBoot, boot.isUKI, case .bios = spec.firmware {
            throw VirtError(
                .firmwareNotUEFI, "a UKI is a UEFI executable: it cannot boot with BIOS firmware; give a UEFI (OVMF) firmware",
                field: "firmware")
        }
        guard let launchSecurity = spec.launchSecurity else { return }
        switch launchSecurity {
        case .sev(let sev): try checkSEV(sev, spec: spec, capabilities: capabilities, running: running)
        case .tdx: try checkTDX(spec: spec, capabilities: capabilities)
        }
        for device in spec.devices {
            switch device {
            case .virtioMem:
                throw VirtError(
                    .virtioMemRefused,
                    "virtio-mem cannot be used in a confidential guest: hot-plugged memory is neither encrypted nor measured by the TEE",
                    field: "devices.memory")
            case .mediatedDevice(let uuid, _):
                throw VirtError(
                    .mediatedDeviceRefused,
                    "mediated device \(uuid) (vGPU) refused: the device would DMA into guest memory outside the TEE's protection",
                    field: "devices.hostdev")
            case .balloon(let iommu) where !iommu:
                throw VirtError(
                    .balloonWithoutIOMMU,
                    "a memory balloon in a confidential guest needs iommu='on' (the virtio DMA API; libvirt kbase 'Virtio')",
                    field: "devices.memballoon")
            default: continue
            }
        }
    }

    private static func checkSEV(
        _ sev: DomainSpec.SEVLaunch, spec: DomainSpec, capabilities: DomainCapabilities, running: RunningGuests
    ) throws(VirtError) {
        guard let host = capabilities.sev, capabilities.arch == "x86_64" else {
            throw VirtError(
                .teeUnavailable, "the host's domain capabilities (\(capabilities.arch), \(capabilities.machine)) do not offer AMD SEV",
                field: "launchSecurity")
        }
        if sev.isES {
            guard let maxES = host.maxESGuests, maxES > 0 else {
                throw VirtError(
                    .sevESUnavailable, "the policy asks for SEV-ES (bit 2) but the host's capabilities give no maxESGuests",
                    field: "launchSecurity.policy"
                )
            }
            guard running.sevES < Int(maxES) else {
                throw VirtError(
                    .asidLimitReached, "\(running.sevES) SEV-ES or SEV-SNP guests run and the host has \(maxES) SEV-ES ASIDs",
                    field: "launchSecurity")
            }
        } else if let maxGuests = host.maxGuests, running.sev >= Int(maxGuests) {
            throw VirtError(
                .asidLimitReached, "\(running.sev) SEV guests run and the host has \(maxGuests) SEV ASIDs", field: "launchSecurity")
        }
        guard case .uefi(let firmware) = spec.firmware else {
            throw VirtError(.firmwareNotUEFI, "SEV guests boot only with OVMF (UEFI)", field: "firmware")
        }
        guard firmware.nvramTemplate == nil else {
            throw VirtError(
                .firmwareUnsuitable,
                "an attested SEV guest needs stateless firmware: NVRAM is not in the launch measurement (sev.md §11.7)",
                field: "firmware")
        }
        if sev.kernelHashes {
            guard firmware.build == .amdSev else {
                throw VirtError(
                    .firmwareUnsuitable,
                    "kernelHashes needs OVMF's AmdSev build (OvmfPkg/AmdSev): \(firmware.path) is a \(firmware.build.rawValue) build without the hashes table",
                    field: "firmware")
            }
            guard spec.directBoot != nil else {
                throw VirtError(.firmwareUnsuitable, "kernelHashes='yes' needs a direct-boot kernel (the UKI)", field: "os.kernel")
            }
        }
    }

    private static func checkTDX(spec: DomainSpec, capabilities: DomainCapabilities) throws(VirtError) {
        guard capabilities.hasTDX, capabilities.arch == "x86_64" else {
            throw VirtError(
                .teeUnavailable, "the host's domain capabilities (\(capabilities.arch), \(capabilities.machine)) do not offer Intel TDX",
                field: "launchSecurity")
        }
        guard case .uefi(let firmware) = spec.firmware else {
            throw VirtError(.firmwareNotUEFI, "TDX guests boot only with TDVF (OVMF's IntelTdx build)", field: "firmware")
        }
        guard firmware.build == .intelTdx, firmware.nvramTemplate == nil else {
            throw VirtError(
                .firmwareUnsuitable, "TDX needs OVMF's IntelTdx build loaded as a ROM (no pflash NVRAM): \(firmware.path) is not",
                field: "firmware")
        }
    }

    /// Checks that a UKI is signed by one of the tenant's db certificates (the UEFI db check of CustosUKI).
    /// - Parameters:
    ///   - uki: the UKI's bytes.
    ///   - dbCertificates: the tenant's db certificates.
    ///   - time: the validation time (nil: now).
    /// - Returns: the verified signature (signer, digest).
    /// - Throws: ``VirtError/Code/ukiNotTrusted`` naming why (not a PE image, unsigned, untrusted signer, tampered).
    @discardableResult
    public static func verifyUKI(_ uki: [UInt8], dbCertificates: [Certificate], time: Date? = nil) throws(VirtError) -> VerifiedSignature {
        guard !dbCertificates.isEmpty else {
            throw VirtError(.ukiNotTrusted, "no db certificate to check the UKI against", field: "dbCert")
        }
        let image: PEImage
        do { image = try PEImage(bytes: uki) } catch {
            throw VirtError(.ukiNotTrusted, "the UKI is not a PE image: \(error.description)", field: "uki")
        }
        switch AuthenticodeVerifier(trustAnchors: dbCertificates, time: time).verify(image) {
        case .verified(let signature): return signature
        case .rejected(let failures):
            let reasons = failures.map(\.description).joined(separator: "; ")
            throw VirtError(
                .ukiNotTrusted,
                "the UKI is not signed by one of the tenant's db certificates: \(reasons.isEmpty ? "no signature" : reasons)",
                field: "uki")
        }
    }
}
