import ArgumentParser
import CustosCrypto
import CustosKBS
import CustosServer
import CustosVirt
import Foundation

/// `custos launch tdx`: a TDX trust domain from a signed UKI (issue 12 §3, ``TDXLaunchFlow``).
struct LaunchTDXCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tdx",
        abstract: "Launch a TDX trust domain from a signed UKI and register its measurements as reference values.",
        discussion: """
            Steps: verify the UKI's signature against --db-cert → compute its Authenticode SHA-384 (the RTMR1 event \
            digest) and PCR 11 / RTMR2 prediction → refusal checks → PUT /v1/reference-values/{tenant}/<name>-uki-… \
            (a tenant-admin token) → define and start the TD (MRCONFIGID = the --init-data digest). The TD then attests \
            on its own through /kbs/v0. Exit status: 0 started, 1 refused, 2 unusable input or a failure of libvirt \
            or the service.
            """)

    @OptionGroup var launch: GuestLaunchOptions
    @Option(name: .long, help: "The tenant's UEFI db certificate(s), PEM: the UKI must be signed by one of them.")
    var dbCert: String
    @Option(name: .long, help: "The init-data TOML document; its digest becomes MRCONFIGID.")
    var initData: String?
    @Option(name: .long, help: "The tenant the reference values belong to (default: the init-data's tenant).")
    var tenant: String?
    @Option(name: .long, help: "The number of vCPUs (default 1).")
    var vcpus: UInt32 = 1
    @OptionGroup var global: GlobalOptions

    func validate() throws {
        try launch.validateLaunch()
        guard vcpus >= 1, vcpus <= 4096 else { throw ValidationError("--vcpus must be 1…4096") }
    }

    func run() async throws {
        try launch.requireFile(launch.firmware, what: "firmware image")
        let uki = try InputFile.read(launch.uki, kind: .uki, what: "UKI")
        let pem = String(decoding: try InputFile.read(dbCert, kind: .certificate, what: "db certificate"), as: UTF8.self)
        let certificates: [Certificate]
        do { certificates = try Certificate.parsePEMChain(pem) } catch {
            throw CLIError("--db-cert \(dbCert) holds no usable PEM certificate: \(error)", code: "certificateMalformed", field: "dbCert")
        }
        var mrConfigID: [UInt8]?
        var initTenant: String?
        if let initData {
            // The exact bytes are digested into MRCONFIGID: text that is not UTF-8 is refused, never repaired (a repaired
            // text's digest would match no init-data the guest could send).
            let bytes = try InputFile.read(initData, kind: .policy, what: "init-data")
            guard let text = String(validating: bytes, as: UTF8.self) else {
                throw CLIError("init-data \(initData) is not UTF-8 text", code: "initDataMalformed", field: "initData")
            }
            do {
                let parsed = try InitData(KBSInitData(format: "toml", body: text))
                mrConfigID = parsed.mrConfigID
                initTenant = parsed.tenant
            } catch {
                throw CLIError("init-data \(initData): \(error.message)", code: "initDataMalformed", field: "initData")
            }
        }
        let tenant = self.tenant ?? initTenant
        var options = TDXLaunchFlow.Options(
            name: launch.name, tenant: tenant ?? "", firmwarePath: GuestLaunchOptions.absolute(launch.firmware),
            ukiPath: GuestLaunchOptions.absolute(launch.uki), uki: uki, dbCertificates: certificates, mrConfigID: mrConfigID, vcpus: vcpus)
        if launch.dryRun {
            let capabilities = try await launch.capabilities()
            let (definition, measurements) = try TDXLaunchFlow.dryRun(options, capabilities: capabilities)
            if global.json {
                var sets: [String: JSONValue] = [:]
                for set in measurements.referenceSets(name: launch.name, mrConfigID: mrConfigID) {
                    sets[set.name] = .array(set.values.map { .string($0) })
                }
                LaunchOutput.line(["dry_run": true, "tee": "tdx", "reference_values": .object(sets), "xml": .string(definition.xml)])
            } else {
                print(definition.xml, terminator: "")
                LaunchOutput.note("dry run: would register the UKI's Authenticode SHA-384 \(Hex.encode(measurements.authenticodeSHA384))")
            }
            return
        }
        guard let tenant, !tenant.isEmpty else {
            throw CLIError(
                "name the tenant of the reference values: --tenant, or a tenant in the init-data", code: "usage", field: "tenant")
        }
        options.tenant = tenant
        let token = try launch.readToken()
        let capabilities = try await launch.domcaps.asyncMap { _ in try await launch.capabilities() }
        let hypervisor = try await launch.hypervisor()
        let flow = TDXLaunchFlow(
            hypervisor: hypervisor, service: HTTPLaunchService(baseURL: launch.service ?? "", token: token), capabilities: capabilities)
        let result = try await GuestLaunchOptions.closing({ await hypervisor.connection.close() }) {
            try await flow.launch(options, progress: LaunchOutput.progress(json: global.json))
        }
        if global.json {
            LaunchOutput.line([
                "result": [
                    "domain": .string(result.domain.name), "uuid": .string(result.domain.uuid), "state": "running",
                    "authenticode_sha384": .string(Hex.encode(result.measurements.authenticodeSHA384)),
                    "reference_values": .object(result.referenceSets.mapValues { .array($0.map { .string($0) }) }),
                ]
            ])
        } else {
            print("started \(result.domain); reference sets: \(result.referenceSets.keys.sorted().joined(separator: ", "))")
        }
    }
}
