import ArgumentParser
import CustosAgent
import CustosCrypto
import Foundation

/// `custos agent sev-secret`: the launcher's injected secret, out of efi_secret, onto tmpfs, then wiped.
struct AgentSEVSecretCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sev-secret",
        abstract: "Write the injected secret <securityfs>/secrets/coco/<guid> to a tmpfs file (mode 0400), then unlink the entry.",
        discussion: "--list shows the GUIDs present (never values). The driver is loaded (modprobe efi_secret) when needed.")

    @Option(name: .long, help: "The secret's GUID (8-4-4-4-12).") var guid: String?
    @Option(name: .long, help: "The file to write (on tmpfs/ramfs).") var out: String?
    @Flag(name: .long, help: "List the GUIDs present.") var list = false
    @Flag(name: .customLong("allow-disk"), help: "Accept an output file that is not on tmpfs/ramfs.") var allowDisk = false
    @OptionGroup var roots: AgentRoots
    @OptionGroup var global: GlobalOptions

    func validate() throws {
        if list {
            guard guid == nil, out == nil else { throw ValidationError("--list takes no --guid or --out") }
        } else {
            guard guid != nil, out != nil else { throw ValidationError("give --guid GUID --out FILE, or --list") }
        }
    }

    func run() async throws {
        let store = EFISecretStore(securityfsRoot: roots.securityfs)
        if list {
            let guids = try store.list()
            if global.json {
                AgentOutput.printJSON(["guids": .array(guids.map { .string($0) })])
            } else {
                for guid in guids { print(guid) }
            }
            return
        }
        guard let guid, let out else { throw AgentError(.usage, .unusable, "give --guid GUID --out FILE, or --list") }
        let name = try EFISecretStore.normalize(guid: guid)
        let writer = SecretFileWriter(allowDisk: allowDisk)
        let url = URL(fileURLWithPath: out)
        let directory = url.deletingLastPathComponent().path
        // Check the destination first: the entry is only unlinked once the secret is safe on tmpfs.
        try writer.prepareDirectory(directory)
        let secret = try store.read(guid: name)
        let path = try writer.write(secret, directory: directory, name: url.lastPathComponent)
        try store.remove(guid: name)
        if global.json {
            AgentOutput.printJSON([
                "guid": .string(name), "path": .string(path), "bytes": .integer(Int64(secret.count)), "unlinked": true,
            ])
        } else {
            print("wrote secret \(name) to \(path) (\(secret.count) bytes, mode 0400); removed it from \(store.directory)")
        }
    }
}
