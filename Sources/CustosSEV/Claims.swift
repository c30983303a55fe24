public import CustosCrypto

/// The claims document of a SEV/SEV-ES launch: what launch policies evaluate (`Policies/sev-es/*.yaml`).
///
/// ```json
/// { "sev": { "launch_digest": "…", "guest_policy": { "nodbg": true, "noks": true, "es": true, "nosend": false,
///            "domain": false, "sev": false, "api_major": 0, "api_minor": 0, "value": 7 },
///            "api_version": "0.24", "build_id": 15, "platform": { "generation": "rome" },
///            "inputs": { "firmware_sha256": "…", "kernel_sha256": "…", "cmdline": "…", "vcpus": 4, … } } }
/// ```
///
/// The schema is `CustosPolicy.ClaimSchema`; a test checks that every path here is in it.
public enum SEVClaims {
    /// The claims of a launch whose measurement was checked (``MeasurementChecker``).
    ///
    /// - Parameters:
    ///   - generation: the platform's product line from its verified certificate chain (`naples`, `rome`, `milan`,
    ///     `genoa`), when known.
    ///   - inputs: the launch inputs the expected digest was computed from; their digests are listed under `inputs`.
    public static func document(_ measurement: VerifiedMeasurement, generation: String? = nil, inputs: LaunchInputs? = nil) -> JSONValue {
        document(
            launchDigest: measurement.launchDigest, policy: measurement.policy, version: measurement.version, generation: generation,
            inputs: inputs)
    }

    /// The claims from their parts (a launch digest, the guest policy, the firmware's API version and build).
    public static func document(
        launchDigest: [UInt8], policy: GuestPolicy, version: FirmwareVersion, generation: String? = nil, inputs: LaunchInputs? = nil
    ) -> JSONValue {
        let bits = policy.rawValue
        var sev: [String: JSONValue] = [
            "launch_digest": .string(Hex.encode(launchDigest)),
            // Guest policy bits (sev.md §3): 0 NODBG, 1 NOKS, 2 ES, 3 NOSEND, 4 DOMAIN, 5 SEV; 16-23 / 24-31 minimum API.
            "guest_policy": [
                "nodbg": .bool(bits & GuestPolicy.noDebug.rawValue != 0),
                "noks": .bool(bits & GuestPolicy.noKeySharing.rawValue != 0),
                "es": .bool(bits & GuestPolicy.encryptedState.rawValue != 0),
                "nosend": .bool(bits & GuestPolicy.noSend.rawValue != 0),
                "domain": .bool(bits & GuestPolicy.domain.rawValue != 0),
                "sev": .bool(bits & GuestPolicy.sev.rawValue != 0),
                "api_major": .integer(Int64(policy.minimumAPI.major)),
                "api_minor": .integer(Int64(policy.minimumAPI.minor)),
                "value": .integer(Int64(bits)),
            ],
            "api_version": .string("\(version.apiMajor).\(version.apiMinor)"),
            "build_id": .integer(Int64(version.buildID)),
        ]
        if let generation { sev["platform"] = ["generation": .string(generation)] }
        if let inputs {
            var described: [String: JSONValue] = [
                "firmware_sha256": .string(Hex.encode(Digest.sha256(inputs.firmware))),
                "vcpus": .integer(Int64(inputs.vcpus)),
                "vmsa_variant": .string(inputs.vmsaVariant.rawValue),
            ]
            if let kernel = inputs.kernel { described["kernel_sha256"] = .string(Hex.encode(Digest.sha256(kernel))) }
            if let initrd = inputs.initrd { described["initrd_sha256"] = .string(Hex.encode(Digest.sha256(initrd))) }
            if let cmdline = inputs.cmdline { described["cmdline"] = .string(cmdline) }
            sev["inputs"] = .object(described)
        }
        return ["sev": .object(sev)]
    }
}
