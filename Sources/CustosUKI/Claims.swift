public import CustosCrypto

/// The claims document of a Unified Kernel Image: merged (as `uki`) into a TD's claims when its event log shows
/// the UKI booted, or evaluated on its own.
///
/// ```json
/// { "uki": { "authenticode_sha384": "…", "authenticode_sha256": "…", "pcr11": "…", "pcr11_sha384": "…",
///            "cmdline": "…", "uname": "…", "stub_version": "…", "os_release": { "ID": "debian", … } } }
/// ```
///
/// `pcr11` is the SHA-256 PCR 11 prediction (systemd-stub's measurement of the UKI sections). The schema is
/// `CustosPolicy.ClaimSchema`; a test checks that every path here is in it.
public enum UKIClaims {
    public static func document(_ uki: UnifiedKernelImage) -> JSONValue {
        var claims: [String: JSONValue] = [
            "authenticode_sha384": .string(Hex.encode(uki.authenticodeDigest(.sha384))),
            "authenticode_sha256": .string(Hex.encode(uki.authenticodeDigest(.sha256))),
        ]
        // A UKI without a recognised stub has no PCR 11 prediction: the claims are then absent (a policy that
        // needs them fails its condition with `actual: missing`).
        if let pcr11 = try? uki.predictPCR11(.sha256) { claims["pcr11"] = .string(Hex.encode(pcr11)) }
        if let pcr11 = try? uki.predictPCR11(.sha384) { claims["pcr11_sha384"] = .string(Hex.encode(pcr11)) }
        if let cmdline = uki.cmdline { claims["cmdline"] = .string(cmdline) }
        if let uname = uki.uname { claims["uname"] = .string(uname) }
        if let stub = uki.stub { claims["stub_version"] = .string(stub.fullVersion) }
        if let osRelease = uki.osRelease { claims["os_release"] = .object(osRelease.mapValues { .string($0) }) }
        return ["uki": .object(claims)]
    }
}
