/// The claims a policy may name: every path some verifier's claims document defines
/// (`CustosTDX/Claims.swift`, `CustosSEV/Claims.swift`, `CustosUKI/Claims.swift`), with its type.
///
/// Names follow Trustee's attestation-service claims where they exist (service.md §5.1). A policy naming any other
/// path is rejected at load, so a typo cannot silently fail a condition forever.
public enum ClaimSchema {
    /// The JSON type a claim has in a claims document.
    public enum ClaimType: String, Sendable, Hashable {
        /// Lowercase hexadecimal bytes (a string).
        case hex
        case string
        case bool
        case integer
        /// A list of strings (`tdx.advisory_ids`).
        case stringList
        /// An open object whose members the evidence defines (`init_data_claims`, `runtime_data_claims`, `uki.os_release`).
        case open
    }

    /// Every known claim path.
    public static let claims: [String: ClaimType] = {
        var claims: [String: ClaimType] = [:]
        // TDX (Trustee's `tdx` claims, service.md §5.1).
        for field in ["version", "att_key_type", "tee_type", "reserved", "vendor_id", "user_data"] {
            claims["tdx.quote.header." + field] = .hex
        }
        for field in [
            "tcb_svn", "mr_seam", "mrsigner_seam", "seam_attributes", "td_attributes", "xfam", "mr_td", "mr_config_id", "mr_owner",
            "mr_owner_config", "rtmr_0", "rtmr_1", "rtmr_2", "rtmr_3", "report_data", "tee_tcb_svn2", "mr_servicetd",
        ] {
            claims["tdx.quote.body." + field] = .hex
        }
        claims["tdx.quote.type"] = .string
        for flag in ["debug", "septve_disable", "protection_keys", "key_locker", "perfmon"] { claims["tdx.td_attributes." + flag] = .bool }
        claims["tdx.tcb_status"] = .string
        claims["tdx.advisory_ids"] = .stringList
        claims["tdx.collateral_expiration_status"] = .string
        claims["tdx.collateral_expiry"] = .string
        claims["tdx.tcb_date"] = .string
        claims["tdx.fmspc"] = .hex
        claims["tdx.platform_tcb_status"] = .string
        claims["tdx.module_tcb_status"] = .string
        claims["tdx.qe_tcb_status"] = .string
        claims["tdx.eventlog.rtmrs_match"] = .bool
        claims["tdx.eventlog.event_count"] = .integer
        claims["tdx.eventlog.boot_applications"] = .stringList
        claims["report_data"] = .hex
        claims["init_data"] = .hex
        claims["init_data_claims"] = .open
        claims["runtime_data_claims"] = .open
        // SEV / SEV-ES launch.
        claims["sev.launch_digest"] = .hex
        for flag in ["nodbg", "noks", "es", "nosend", "domain", "sev"] { claims["sev.guest_policy." + flag] = .bool }
        claims["sev.guest_policy.api_major"] = .integer
        claims["sev.guest_policy.api_minor"] = .integer
        claims["sev.guest_policy.value"] = .integer
        claims["sev.api_version"] = .string
        claims["sev.build_id"] = .integer
        claims["sev.platform.generation"] = .string
        claims["sev.inputs.firmware_sha256"] = .hex
        claims["sev.inputs.kernel_sha256"] = .hex
        claims["sev.inputs.initrd_sha256"] = .hex
        claims["sev.inputs.cmdline"] = .string
        claims["sev.inputs.vcpus"] = .integer
        claims["sev.inputs.vmsa_variant"] = .string
        // UKI.
        claims["uki.authenticode_sha384"] = .hex
        claims["uki.authenticode_sha256"] = .hex
        claims["uki.pcr11"] = .hex
        claims["uki.pcr11_sha384"] = .hex
        claims["uki.cmdline"] = .string
        claims["uki.uname"] = .string
        claims["uki.stub_version"] = .string
        claims["uki.os_release"] = .open
        return claims
    }()

    /// The type of `path`, or `nil` when no evidence type defines it. Paths under an open object are `.open`.
    public static func type(of path: String) -> ClaimType? {
        if let type = claims[path] { return type }
        var prefix = Substring(path)
        while let dot = prefix.lastIndex(of: ".") {
            prefix = prefix[..<dot]
            if claims[String(prefix)] == .open { return .open }
        }
        return nil
    }
}
