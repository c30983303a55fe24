public import Foundation

/// A domain described by typed values; ``DomainXML`` writes it as libvirt domain XML after ``LaunchChecks`` accepted
/// it. Every string here is data: the writer escapes it.
public struct DomainSpec: Sendable, Equatable {
    public var name: String
    public var uuid: UUID?
    /// libvirt's domain type: `kvm` (hardware), `qemu` (TCG), `test`.
    public var virtType: String
    public var memoryKiB: UInt64
    public var vcpus: UInt32
    public var arch: String
    public var machine: String
    public var firmware: Firmware
    /// Direct kernel boot; for Custos's launches the kernel is the signed UKI (so SEV kernel hashes cover it).
    public var directBoot: DirectBoot?
    public var launchSecurity: LaunchSecurity?
    public var devices: [Device]
    /// `<memoryBacking><locked/>`: SEV pins guest memory (libvirt kbase "Memory"); forced on for SEV.
    public var lockedMemory: Bool
    /// The emulator binary; nil lets libvirt choose.
    public var emulator: String?
    /// `<on_reboot>destroy`: a guest reset powers the domain off (QEMU's `-no-reboot`). Confidential domains always
    /// do this; a non-confidential one (the TCG twin of a confidential domain) asks for it here.
    public var destroyOnReboot = false

    public init(
        name: String, uuid: UUID? = nil, virtType: String = "kvm", memoryKiB: UInt64, vcpus: UInt32, arch: String = "x86_64",
        machine: String = "q35", firmware: Firmware, directBoot: DirectBoot? = nil, launchSecurity: LaunchSecurity? = nil,
        devices: [Device] = [], lockedMemory: Bool = false, emulator: String? = nil
    ) {
        self.name = name
        self.uuid = uuid
        self.virtType = virtType
        self.memoryKiB = memoryKiB
        self.vcpus = vcpus
        self.arch = arch
        self.machine = machine
        self.firmware = firmware
        self.directBoot = directBoot
        self.launchSecurity = launchSecurity
        self.devices = devices
        self.lockedMemory = lockedMemory
        self.emulator = emulator
    }

    /// The firmware.
    public enum Firmware: Sendable, Equatable {
        /// Legacy BIOS (SeaBIOS): cannot boot a UKI.
        case bios
        /// A UEFI image.
        case uefi(UEFIFirmware)
    }

    /// A UEFI firmware image and which OVMF build it is (uki.md step 5).
    public struct UEFIFirmware: Sendable, Equatable {
        public enum Build: String, Sendable, Equatable {
            /// `OvmfPkg/AmdSev/AmdSevX64.dsc`: stateless, carries the SEV kernel-hashes table.
            case amdSev
            /// `OvmfPkg/IntelTdx/IntelTdxX64.dsc` (TDVF config-B).
            case intelTdx
            /// A generic OvmfPkgX64 build (Secure Boot or not); no kernel-hashes table.
            case generic
        }
        public var path: String
        public var build: Build
        /// The NVRAM template for a pflash build with variables; nil = stateless ROM (what attested guests need:
        /// NVRAM is not measured, sev.md §11.7).
        public var nvramTemplate: String?
        /// Secure Boot enforcement (a `secboot` build with enrolled keys).
        public var secureBoot: Bool
        /// Where the domain's own NVRAM copy lives (`<nvram template=…>path</nvram>`); nil lets libvirt choose
        /// (`/var/lib/libvirt/qemu/nvram/<name>_VARS.fd`). Only with `nvramTemplate`.
        public var nvramPath: String?

        public init(path: String, build: Build, nvramTemplate: String? = nil, secureBoot: Bool = false, nvramPath: String? = nil) {
            self.path = path
            self.build = build
            self.nvramTemplate = nvramTemplate
            self.secureBoot = secureBoot
            self.nvramPath = nvramPath
        }
    }

    /// Direct kernel boot (`<os><kernel>`, `<initrd>`, `<cmdline>`).
    public struct DirectBoot: Sendable, Equatable {
        public var kernel: String
        public var initrd: String?
        public var cmdline: String?
        /// Whether `kernel` is a UKI (a PE image with its own initrd/cmdline: needs UEFI firmware).
        public var isUKI: Bool

        public init(kernel: String, initrd: String? = nil, cmdline: String? = nil, isUKI: Bool = true) {
            self.kernel = kernel
            self.initrd = initrd
            self.cmdline = cmdline
            self.isUKI = isUKI
        }
    }

    /// The confidential-computing technology.
    public enum LaunchSecurity: Sendable, Equatable {
        case sev(SEVLaunch)
        case tdx(TDXLaunch)
    }

    /// `<launchSecurity type='sev'>` (sev.md §2.6).
    public struct SEVLaunch: Sendable, Equatable {
        /// nil: taken from the host's domain capabilities.
        public var cbitpos: UInt32?
        public var reducedPhysBits: UInt32?
        /// The guest policy (sev.md §3); bit 2 (0x4) asks for SEV-ES.
        public var policy: UInt32
        /// The GODH certificate, base64 as the service returns it.
        public var dhCert: String
        /// The launch session blob, base64.
        public var session: String
        /// `kernelHashes='yes'`: QEMU puts the direct-boot kernel, initrd and cmdline hashes into the measured table.
        public var kernelHashes: Bool

        public init(
            cbitpos: UInt32? = nil, reducedPhysBits: UInt32? = nil, policy: UInt32, dhCert: String, session: String,
            kernelHashes: Bool = true
        ) {
            self.cbitpos = cbitpos
            self.reducedPhysBits = reducedPhysBits
            self.policy = policy
            self.dhCert = dhCert
            self.session = session
            self.kernelHashes = kernelHashes
        }

        /// Whether the policy asks for SEV-ES (policy bit 2).
        public var isES: Bool { policy & 0x4 != 0 }
    }

    /// `<launchSecurity type='tdx'>` or its `<qemu:commandline>` equivalent (tdx.md §5).
    public struct TDXLaunch: Sendable, Equatable {
        /// TD attributes (bit 0 debug, bit 28 SEPT_VE_DISABLE; QEMU's default 0x10000000).
        public var policy: UInt64
        /// MRCONFIGID (48 bytes), for example the init-data digest.
        public var mrConfigId: [UInt8]?
        public var mrOwner: [UInt8]?
        public var mrOwnerConfig: [UInt8]?
        /// The quote generation service's Unix socket.
        public var quoteGenerationSocket: String?

        public init(
            policy: UInt64 = 0x1000_0000, mrConfigId: [UInt8]? = nil, mrOwner: [UInt8]? = nil, mrOwnerConfig: [UInt8]? = nil,
            quoteGenerationSocket: String? = nil
        ) {
            self.policy = policy
            self.mrConfigId = mrConfigId
            self.mrOwner = mrOwner
            self.mrOwnerConfig = mrOwnerConfig
            self.quoteGenerationSocket = quoteGenerationSocket
        }

        /// A TDX launch whose MRCONFIGID is the digest of the init-data document: a SHA-384 digest as is, a shorter
        /// one (SHA-256, 32 bytes) zero-padded to 48 bytes as Confidential Containers' guest components compare it.
        /// A digest longer than 48 bytes is kept as given, so writing the XML refuses it.
        public init(policy: UInt64 = 0x1000_0000, initDataDigest: [UInt8], quoteGenerationSocket: String? = nil) {
            let register =
                initDataDigest.count < 48 ? initDataDigest + Array(repeating: 0, count: 48 - initDataDigest.count) : initDataDigest
            self.init(policy: policy, mrConfigId: register, quoteGenerationSocket: quoteGenerationSocket)
        }
    }

    /// A device. Every virtio device gets `<driver iommu='on'/>` in confidential domains.
    public enum Device: Sendable, Equatable {
        /// A virtio disk backed by a file.
        case disk(path: String, target: String = "vda", format: String = "raw", readOnly: Bool = false)
        /// A virtio network interface on a libvirt network (option ROM disabled: iPXE is not SEV-aware).
        case network(name: String)
        /// A virtio entropy source from /dev/urandom.
        case rng
        /// A serial console on a pty.
        case serialConsole
        /// A serial console written to a file on the host (`<serial type='file'>`; libvirt adds the `<console>`).
        case serialFile(path: String)
        /// A virtio memory balloon.
        case balloon(iommu: Bool)
        /// A virtio-mem memory device (refused in confidential domains).
        case virtioMem(sizeKiB: UInt64, blockKiB: UInt64 = 2048)
        /// A mediated device (vGPU) by its UUID (refused in confidential domains).
        case mediatedDevice(uuid: String, model: String = "vfio-pci")
        /// A virtio vsock device.
        case vsock(cid: UInt32)
    }
}
