import ArgumentParser
import CustosVirt
import Foundation

/// `custos host check`: `virt-host-validate` for confidential guests (issue 12 §4). The checks themselves are
/// ``HostCheck`` in CustosVirt; this command gathers the inputs and prints.
struct HostCheckCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Check KVM, AMD SEV/SEV-ES/SEV-SNP, Intel TDX, nesting, IOMMU, firmware builds, virtio-mem and vGPUs on this host.",
        discussion: """
            Each check prints PASS, WARN or FAIL with the reason and the fix; ids: \(HostCheck.ids.joined(separator: ", ")).
            Domain capabilities come from --domcaps, else from the libvirt connection (a failed connection is a WARN).
            Exit status: 0 no FAIL, 1 at least one FAIL, 2 bad usage or an unusable --domcaps file.
            """)

    @Option(name: .long, help: "The libvirt URI to ask for domain capabilities and versions (default qemu:///system).")
    var connect: String?
    @Option(name: .long, help: "Read every host path (/dev, /sys, /proc/cpuinfo, /usr/share/qemu/firmware) under this directory.")
    var hostRoot: String = "/"
    @Option(name: .long, help: "Domain capabilities XML (virsh domcapabilities) to use instead of asking the connection.")
    var domcaps: String?
    @OptionGroup var global: GlobalOptions

    func run() async throws {
        var inputs = HostCheckInputs(root: HostRoot(URL(fileURLWithPath: hostRoot)))
        if let domcaps {
            let bytes = try InputFile.read(domcaps, kind: .collateral, what: "domain capabilities")
            inputs.capabilities = try DomainCapabilities(xml: String(decoding: bytes, as: UTF8.self))
        }
        if inputs.capabilities == nil || connect != nil {
            let uri = connect ?? "qemu:///system"
            do {
                let connection = try await LibvirtConnection.open(uri: uri, readOnly: true)
                let versions = try await connection.versions()
                inputs.libvirtVersion = versions.libvirt
                inputs.hypervisorVersion = versions.hypervisor
                if inputs.capabilities == nil {
                    inputs.capabilities = try DomainCapabilities(xml: try await connection.domainCapabilitiesXML(virtType: "kvm"))
                }
                await connection.close()
            } catch {
                inputs.capabilitiesNote = "libvirt at \(uri): \(error.description)"
            }
        }
        let report = HostCheck.run(inputs)
        if global.json {
            try Output.printJSON(report)
        } else {
            for check in report.checks {
                print(
                    "\(check.verdict.rawValue.padding(toLength: 4, withPad: " ", startingAt: 0))  \(check.id.padding(toLength: 10, withPad: " ", startingAt: 0))  \(check.reason)"
                )
                if !check.fix.isEmpty { print("      \(String(repeating: " ", count: 10))  fix: \(check.fix)") }
            }
        }
        if report.hasFailure { throw ExitCode(1) }
    }
}
