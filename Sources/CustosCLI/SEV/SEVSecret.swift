import ArgumentParser
import CustosCrypto
import CustosSEV

/// `custos sev secret`: the LAUNCH_SECRET packet for libvirt's `sev-secret-header` and `sev-secret`.
struct SEVSecret: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "secret",
        abstract: "Build the encrypted secret table for virDomainSetLaunchSecurityState (run check-measurement first).")
    @Option(name: .long, help: "TEK file (16 raw bytes).") var tek: String
    @Option(name: .long, help: "TIK file (16 raw bytes).") var tik: String
    @Option(name: .long, help: "The measurement: libvirt's base64 sev-measurement (48 bytes) or the 32-byte MEASURE in base64.")
    var measurement: String
    @Option(name: .long, help: "GUID|luks-key:FILE (repeatable); the file's bytes are used verbatim.") var secret: [String]
    @Option(name: .long, help: "OVMF image: the padded table must fit its secret area.") var firmware: String?
    @Option(name: .long, help: "Padding: libvirt (virt-qemu-sev-validate) or minimal (sevctl).") var padding: String = "libvirt"
    @OptionGroup var global: GlobalOptions

    struct Report: Encodable {
        let header: String
        let secret: String
    }

    func run() throws {
        guard let padding = SecretTablePadding(rawValue: padding) else { throw ValidationError("--padding must be libvirt or minimal") }
        guard !secret.isEmpty else { throw ValidationError("give at least one --secret GUID:FILE") }
        guard let measure = try? Base64.decode(measurement), measure.count == 48 || measure.count == 32 else {
            throw ValidationError("--measurement must be base64 of 48 (MEASURE‖MNONCE) or 32 bytes")
        }
        do {
            let entries = try secret.map { spec -> SecretEntry in
                guard let colon = spec.firstIndex(of: ":") else {
                    throw ValidationError("--secret must be GUID:FILE or luks-key:FILE, got \(spec)")
                }
                var data = try SEVFiles.read(String(spec[spec.index(after: colon)...]), what: "secret", kind: .key)
                defer { secureZero(&data) }
                return SecretEntry(guid: try SecretEntry.guid(named: String(spec[..<colon])), data: SecretBytes(data))
            }
            var area: OVMFFooter.Area? = nil
            if let firmware {
                area = try OVMFFooter(firmware: try SEVFiles.read(firmware, what: "firmware", kind: .firmware)).secretArea
                guard area != nil else { throw CLIError("\(firmware) has no SEV secret area in its OVMF footer") }
            }
            let keys = try TransportKeys(tek: try SEVFiles.readKey(tek, what: "TEK"), tik: try SEVFiles.readKey(tik, what: "TIK"))
            let packet = try SecretPacket(
                table: try SecretTable(entries: entries), keys: keys, measure: Array(measure.prefix(32)), firmwareSecretArea: area,
                padding: padding, iv: try SystemRandomSource().bytes(16))
            if global.json {
                try Output.printJSON(Report(header: packet.headerBase64, secret: packet.secretBase64))
            } else {
                print("sev-secret-header: \(packet.headerBase64)")
                print("sev-secret:        \(packet.secretBase64)")
            }
        } catch let error as SEVError { throw SEVFiles.sevError(error) }
    }
}
