import ArgumentParser

/// `custos host …`: the virtualization host.
struct HostCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "host", abstract: "Check a virtualization host for confidential guests (AMD SEV/SEV-ES, Intel TDX).",
        subcommands: [HostCheckCommand.self])
}
