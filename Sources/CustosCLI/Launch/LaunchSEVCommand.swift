import ArgumentParser
import CustosCrypto
import CustosVirt
import Foundation

/// `custos launch sev`: the measured SEV/SEV-ES launch of issue 12 §2 (``SEVLaunchFlow``).
struct LaunchSEVCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sev",
        abstract: "Measured SEV/SEV-ES launch: the service checks the launch measurement before the secret is injected and the guest runs.",
        discussion: """
            Steps: node SEV info → refusal checks → POST /v1/launches (the service verifies the platform chain and makes \
            the session) → define and start paused with the GODH/session → launch measurement → POST \
            /v1/launches/{id}/measurement (the tenant's LaunchPolicy decides against its reference set \
            sev_launch_digest / sev_es_launch_digest) → inject the secret packet → resume. Any failure after define \
            destroys and undefines the domain. Exit status: 0 launched, 1 refused or denied, 2 unusable input or a \
            failure of libvirt or the service.
            """)

    @OptionGroup var launch: GuestLaunchOptions
    @Option(name: .long, help: "The number of vCPUs (SEV-ES measures one VMSA per vCPU).")
    var vcpus: UInt32
    @Flag(name: .long, help: "SEV-ES (sets bit 2 of the guest policy).")
    var sevEs = false
    @Option(name: .long, help: "The guest policy, hex (0x…) or decimal (default 0x3; 0x7 with --sev-es).")
    var policy: String?
    @Option(
        name: .long, parsing: .singleValue,
        help: "A secret to inject: GUID:PATH (GUID or luks-key; PATH a secret of the tenant). Repeatable.")
    var secret: [String] = []
    @OptionGroup var global: GlobalOptions

    func validate() throws {
        try launch.validateLaunch()
        guard vcpus >= 1, vcpus <= 4096 else { throw ValidationError("--vcpus must be 1…4096") }
        _ = try guestPolicy()
        _ = try secrets()
        if !launch.dryRun, secret.isEmpty { throw ValidationError("give at least one --secret GUID:PATH") }
    }

    func guestPolicy() throws -> UInt32 {
        var value: UInt32 = 0x3
        if let policy {
            let text = policy.lowercased()
            let parsed = text.hasPrefix("0x") ? UInt32(text.dropFirst(2), radix: 16) : UInt32(text)
            guard let parsed else { throw ValidationError("--policy must be a 32-bit integer (0x… or decimal), not \(policy)") }
            value = parsed
        }
        if sevEs { value |= 0x4 }
        return value
    }

    func secrets() throws -> [LaunchCreation.SecretReference] {
        try secret.map { item in
            guard let colon = item.firstIndex(of: ":"), colon != item.startIndex, item.index(after: colon) != item.endIndex else {
                throw ValidationError("--secret must be GUID:PATH, not \(item)")
            }
            return LaunchCreation.SecretReference(guid: String(item[..<colon]), path: String(item[item.index(after: colon)...]))
        }
    }

    func run() async throws {
        try launch.requireFile(launch.firmware, what: "firmware image")
        try launch.requireFile(launch.uki, what: "UKI")
        let options = SEVLaunchFlow.Options(
            name: launch.name, firmwarePath: GuestLaunchOptions.absolute(launch.firmware), ukiPath: GuestLaunchOptions.absolute(launch.uki),
            vcpus: vcpus, policy: try guestPolicy(), secrets: try secrets())
        if launch.dryRun {
            let capabilities = try await launch.capabilities()
            let definition = try SEVLaunchFlow.dryRun(
                options, capabilities: capabilities, running: try await launch.runningGuestsForDryRun())
            LaunchOutput.note(
                "dry run: dhCert and session are placeholders; a launch writes the GODH and session the service returns")
            if global.json {
                LaunchOutput.line([
                    "dry_run": true, "tee": .string(options.tee), "guest_policy": .integer(Int64(options.policy)),
                    "xml": .string(definition.xml),
                ])
            } else {
                print(definition.xml, terminator: "")
            }
            return
        }
        let token = try launch.readToken()
        let capabilities = try await launch.domcaps.asyncMap { _ in try await launch.capabilities() }
        let hypervisor = try await launch.hypervisor()
        let flow = SEVLaunchFlow(
            hypervisor: hypervisor, service: HTTPLaunchService(baseURL: launch.service ?? "", token: token), capabilities: capabilities)
        let result = try await GuestLaunchOptions.closing({ await hypervisor.connection.close() }) {
            try await flow.launch(options, progress: LaunchOutput.progress(json: global.json))
        }
        if global.json {
            LaunchOutput.line([
                "result": [
                    "domain": .string(result.domain.name), "uuid": .string(result.domain.uuid), "launch_id": .string(result.launchID),
                    "appraisal_id": .string(result.appraisalID), "state": "running",
                ]
            ])
        } else {
            print("launched \(result.domain) — launch \(result.launchID), appraisal \(result.appraisalID)")
        }
    }
}

extension Optional {
    /// `map` with an async transform.
    func asyncMap<T>(_ transform: (Wrapped) async throws -> T) async rethrows -> T? {
        guard let value = self else { return nil }
        return try await transform(value)
    }
}
