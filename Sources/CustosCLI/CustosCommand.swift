public import ArgumentParser
import CustosCrypto

/// The `custos` root command: noun groups, one file per verb.
public struct CustosCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "custos",
        abstract: "Confidential-computing attestation: guest owner for AMD SEV/SEV-ES, relying party for Intel TDX.",
        version: CustosVersion.string,
        subcommands: [
            VersionCommand.self,
            ServeCommand.self,
            CertsCommand.self,
            TDXCommand.self,
            SEVCommand.self,
            UKICommand.self,
            PolicyCommand.self,
            StoreCommand.self,
            KeysCommand.self,
            AuditCommand.self,
            BenchCommand.self,
            HostCommand.self,
            LaunchCommand.self,
            AgentCommand.self,
        ]
    )
    public init() {}
}

public enum CustosVersion {
    public static let string = "0.1.0"
}

struct VersionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "version", abstract: "Print the Custos version and the OpenSSL it runs on.")
    @Flag(name: .long, help: "Print JSON.") var json = false
    func run() throws {
        if json {
            print(#"{"custos": "\#(CustosVersion.string)", "openssl": "\#(OpenSSLInfo.version)"}"#)
        } else {
            print("custos \(CustosVersion.string) (\(OpenSSLInfo.version))")
        }
    }
}
