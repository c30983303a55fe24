import ArgumentParser
import AsyncHTTPClient
import CustosAnchors
import CustosCrypto
import Foundation
import NIOCore
import NIOHTTP1

/// `custos certs …`: the pinned trust anchors.
struct CertsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "certs", abstract: "List and install the pinned vendor trust anchors (Intel SGX Root CA, AMD ARK/ASK).",
        subcommands: [CertsList.self, CertsInstall.self])
}

struct CertsLocation: ParsableArguments {
    @Option(name: .long, help: "The Certs directory (default: $CUSTOS_CERTS, ./Certs, or the source tree's Certs).")
    var certs: String?

    func store() throws -> AnchorStore {
        do { return try AnchorStore(directory: AnchorStore.locateDirectory(explicit: certs)) } catch {
            throw CLIError(error.description)
        }
    }
}

struct CertsList: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List every pinned anchor and whether it is installed.")
    @OptionGroup var location: CertsLocation
    @OptionGroup var global: GlobalOptions

    func run() throws {
        let store = try location.store()
        let statuses = store.statuses()
        if global.json {
            try Output.printJSON(statuses)
            return
        }
        print("Trust anchors in \(store.directory.path) (pinned by SHA-256 in anchors.json):")
        for status in statuses {
            let state = status.installed ? "installed" : (status.problem.map { "REFUSED: \($0)" } ?? "not installed")
            print("")
            print("  \(status.vendor) \(status.productLine) \(status.role) [\(status.id)] — \(state)")
            print("    file:     \(status.file)")
            print("    sha256:   \(status.sha256)")
            if let subject = status.subject { print("    subject:  \(subject)") }
            if status.notBefore != nil || status.notAfter != nil {
                print("    validity: \(Output.iso(status.notBefore)) … \(Output.iso(status.notAfter))")
            }
        }
        let missing = statuses.filter { !$0.installed }.count
        if missing > 0 { print("\n\(missing) of \(statuses.count) anchors are not installed: run `custos certs install`.") }
    }
}

struct CertsInstall: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "install",
        abstract:
            "Install the pinned anchors from an offline mirror or the vendors' URLs; any file whose SHA-256 differs from its pin is refused."
    )
    @OptionGroup var location: CertsLocation
    @Option(name: .long, help: "Offline mirror laid out like the shared testdata (default: $CUSTOS_TESTDATA, else ../shared/testdata).")
    var from: String?
    @Flag(name: .long, help: "Download from the vendors' pinned URLs instead of a mirror.") var download = false
    @OptionGroup var global: GlobalOptions

    func validate() throws {
        if download && from != nil { throw ValidationError("--download and --from are exclusive") }
    }

    func run() async throws {
        let store = try location.store()
        let results: [AnchorStore.InstallResult]
        if download {
            results = await downloadAll(store)
        } else {
            let mirror = from.map { URL(fileURLWithPath: $0) } ?? AnchorStore.defaultMirror()
            // A mirror that is not there is input Custos cannot use (exit 2); exit 1 stays for anchors refused by pin.
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: mirror.path, isDirectory: &isDirectory) else {
                throw CLIError("the mirror \(mirror.path) does not exist", code: InputFileError.Code.fileNotFound.rawValue, field: "from")
            }
            guard isDirectory.boolValue else {
                throw CLIError("the mirror \(mirror.path) is not a directory", code: InputFileError.Code.notAFile.rawValue, field: "from")
            }
            results = store.install(fromMirror: mirror)
        }
        let failed = results.filter { !$0.installed }
        if !global.json {
            for result in results { print("\(result.installed ? "ok     " : "REFUSED") \(result.id): \(result.message)") }
        } else if failed.isEmpty {
            try Output.printJSON(results)
        }
        // Under --json a failure prints only the contract's one error object (naming the refused anchors).
        if !failed.isEmpty {
            let detail = failed.map { "\($0.id): \($0.message)" }.joined(separator: "; ")
            throw CLIError(
                "\(failed.count) of \(results.count) anchors were not installed (\(detail))", code: "anchorsNotInstalled", exitCode: 1)
        }
    }

    private func downloadAll(_ store: AnchorStore) async -> [AnchorStore.InstallResult] {
        let client = HTTPClient(eventLoopGroupProvider: .singleton)
        var results: [AnchorStore.InstallResult] = []
        // One request per URL (AMD ships ASK‖ARK in one file); a failure is remembered too, so an unreachable host
        // costs one time-out, not one per anchor.
        var cache: [String: Result<[UInt8], CLIError>] = [:]
        for pin in store.manifest.anchors {
            if cache[pin.url] == nil {
                do {
                    let response = try await client.execute(HTTPClientRequest(url: pin.url), timeout: .seconds(30))
                    guard response.status == .ok else { throw CLIError("HTTP \(response.status.code) from \(pin.url)") }
                    cache[pin.url] = .success(Array(buffer: try await response.body.collect(upTo: 1 << 20)))
                } catch {
                    cache[pin.url] = .failure(error as? CLIError ?? CLIError("\(error)"))
                }
            }
            do {
                guard let fetched = cache[pin.url] else { continue }
                try store.install(try AnchorStore.extract(try fetched.get(), for: pin), as: pin)
                results.append(AnchorStore.InstallResult(id: pin.id, installed: true, message: "downloaded from \(pin.url)"))
            } catch {
                let note = pin.note.map { " (\($0))" } ?? ""
                results.append(AnchorStore.InstallResult(id: pin.id, installed: false, message: "\(error)\(note)"))
            }
        }
        try? await client.shutdown()
        return results
    }
}
