import CustosCrypto
public import Foundation

/// A QEMU firmware descriptor (`/usr/share/qemu/firmware/*.json`, QEMU's `docs/interop/firmware.json`), reduced to
/// what identifies the OVMF builds Custos needs.
public struct FirmwareDescriptor: Sendable, Equatable {
    /// The descriptor's file name.
    public var file: String
    public var description: String
    /// `mapping.device`: `flash` (pflash, may have NVRAM) or `memory` (loaded whole, stateless: AmdSev, IntelTdx).
    public var device: String
    /// The executable image (`mapping.executable.filename` or `mapping.filename`).
    public var executable: String?
    /// `mapping.nvram-template.filename`, when the build has variables.
    public var nvramTemplate: String?
    /// `features`: `amd-sev`, `amd-sev-es`, `amd-sev-snp`, `intel-tdx`, `secure-boot`, `enrolled-keys`, …
    public var features: [String]
    /// `targets[].architecture`.
    public var architectures: [String]

    /// The AmdSev build (OvmfPkg/AmdSev): SEV feature, loaded as memory (stateless; it carries the kernel-hashes
    /// table). Debian's generic flash builds also declare `amd-sev` but cannot do kernel hashes (uki.md step 5).
    public var isAmdSevBuild: Bool { features.contains("amd-sev") && device == "memory" }
    /// The IntelTdx build (TDVF config-B): `intel-tdx`, loaded as memory.
    public var isIntelTdxBuild: Bool { features.contains("intel-tdx") && device == "memory" }
    /// A Secure Boot build; `enrolled-keys` when keys are already enrolled in its template.
    public var isSecureBoot: Bool { features.contains("secure-boot") }

    public init(
        file: String, description: String = "", device: String, executable: String? = nil, nvramTemplate: String? = nil,
        features: [String] = [], architectures: [String] = []
    ) {
        self.file = file
        self.description = description
        self.device = device
        self.executable = executable
        self.nvramTemplate = nvramTemplate
        self.features = features
        self.architectures = architectures
    }

    /// Parses one descriptor; nil when it is not a JSON object with a `mapping` (the host check lists such files as
    /// unreadable rather than failing).
    public init?(file: String, json bytes: [UInt8]) {
        guard bytes.count <= 1 << 20, let value = try? JSONValue.parse(bytes), let mapping = value["mapping"] else { return nil }
        guard let device = mapping["device"]?.stringValue else { return nil }
        let executable = mapping["executable"]?["filename"]?.stringValue ?? mapping["filename"]?.stringValue
        let features = value["features"]?.arrayValue?.compactMap(\.stringValue) ?? []
        let architectures = value["targets"]?.arrayValue?.compactMap { $0["architecture"]?.stringValue } ?? []
        self.init(
            file: file, description: value["description"]?.stringValue ?? "", device: device, executable: executable,
            nvramTemplate: mapping["nvram-template"]?["filename"]?.stringValue, features: features, architectures: architectures)
    }
}
