/// The non-confidential twin of a confidential domain (issue 12 §5): the same guest (name, memory, vCPUs, machine,
/// the signed UKI as direct kernel, devices) without the TEE, run by TCG (`type='qemu'`) on a host with neither SEV nor
/// TDX, and booted by a Secure Boot OVMF whose variable store enrolls the tenant's own db key. What a TEE host would
/// refuse for a wrong UKI (a changed launch measurement), the twin refuses in the firmware's signature check, so the
/// twin shows that the very UKI of a launch boots to its init and that a UKI not signed by the db key does not.
extension DomainSpec {
    /// The twin of this confidential domain.
    ///
    /// A pure function: it reads no file and touches no host. The firmware is chosen from `descriptors` by
    /// ``twinFirmware(from:arch:)``; its NVRAM template is `enrolledVars`, a copy of that firmware's empty variable
    /// store with the tenant's PK/KEK/db enrolled and Secure Boot on (made where the twin runs, for example with
    /// `virt-fw-vars`).
    /// - Parameters:
    ///   - descriptors: the host's QEMU firmware descriptors (`/usr/share/qemu/firmware/*.json`).
    ///   - enrolledVars: the NVRAM template carrying the db key.
    ///   - nvramPath: where the domain's NVRAM copy goes; nil lets libvirt choose.
    ///   - serialLog: when given, the serial console is written to this host file instead of a pty.
    ///   - name: the twin's name; nil keeps the confidential domain's name.
    /// - Throws: ``VirtError/Code/invalidSpec`` when the domain is not confidential, does not boot a UKI directly, or
    ///   a path is empty; ``VirtError/Code/firmwareNotUEFI`` for BIOS firmware; ``VirtError/Code/firmwareUnsuitable``
    ///   when no descriptor offers a Secure Boot build with an empty variable store for the architecture.
    public func nonConfidentialTwin(
        firmware descriptors: [FirmwareDescriptor], enrolledVars: String, nvramPath: String? = nil, serialLog: String? = nil,
        name: String? = nil
    ) throws(VirtError) -> DomainSpec {
        guard launchSecurity != nil else {
            throw VirtError(
                .invalidSpec, "\(self.name) is not a confidential domain (no SEV or TDX launch security): it has no twin",
                field: "launchSecurity")
        }
        guard case .uefi = firmware else {
            throw VirtError(.firmwareNotUEFI, "a UKI is a UEFI executable: the domain's firmware must be UEFI (OVMF)", field: "firmware")
        }
        guard let boot = directBoot, boot.isUKI, !boot.kernel.isEmpty else {
            throw VirtError(
                .invalidSpec, "the twin boots the domain's signed UKI: the domain has no UKI as direct kernel", field: "directBoot")
        }
        guard !enrolledVars.isEmpty else {
            throw VirtError(.invalidSpec, "the NVRAM template with the enrolled db key is an empty path", field: "firmware.nvramTemplate")
        }
        if let nvramPath, nvramPath.isEmpty {
            throw VirtError(.invalidSpec, "the NVRAM path is empty", field: "firmware.nvram")
        }
        if let serialLog, serialLog.isEmpty {
            throw VirtError(.invalidSpec, "the serial log path is empty", field: "devices.serial")
        }
        guard let chosen = Self.twinFirmware(from: descriptors, arch: arch), let executable = chosen.executable else {
            throw VirtError(
                .firmwareUnsuitable,
                "no Secure Boot OVMF build with an empty variable store for \(arch) among the firmware descriptors; install ovmf",
                field: "firmware")
        }
        var twin = self
        if let name { twin.name = name }
        twin.virtType = "qemu"
        twin.launchSecurity = nil
        twin.lockedMemory = false
        twin.destroyOnReboot = true
        twin.firmware = .uefi(
            UEFIFirmware(path: executable, build: .generic, nvramTemplate: enrolledVars, secureBoot: true, nvramPath: nvramPath))
        if let serialLog {
            twin.devices = devices.filter { $0 != .serialConsole } + [.serialFile(path: serialLog)]
        }
        return twin
    }

    /// The firmware a twin boots with: QEMU's firmware-selection rules (descriptors in file-name order, the first
    /// match wins, as libvirt and QEMU pick them) restricted to Secure Boot builds that map as pflash with an NVRAM
    /// template and whose template has no keys enrolled (an enrolled template carries Microsoft's keys, which would
    /// admit images the tenant did not sign).
    /// - Parameters:
    ///   - descriptors: the host's firmware descriptors.
    ///   - arch: the guest architecture (`x86_64`).
    /// - Returns: the descriptor, or nil when none fits.
    public static func twinFirmware(from descriptors: [FirmwareDescriptor], arch: String) -> FirmwareDescriptor? {
        descriptors.sorted { $0.file < $1.file }.first { descriptor in
            descriptor.isSecureBoot && !descriptor.features.contains("enrolled-keys") && descriptor.device == "flash"
                && descriptor.architectures.contains(arch) && !(descriptor.executable ?? "").isEmpty
                && !(descriptor.nvramTemplate ?? "").isEmpty
        }
    }
}
