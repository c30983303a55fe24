public import CustosCrypto
public import Foundation

/// The claims document of a verified TDX quote: what appraisal policies evaluate (`Policies/tdx/*.yaml`) and what
/// `custos tdx verify --json` prints under `"claims"`.
///
/// Names follow Trustee's attestation service where they exist (service.md §5.1): `tdx.quote.header.*` and
/// `tdx.quote.body.*` are the quote's fields as lowercase hex of their raw (little-endian) bytes, so
/// `tdx.quote.header.tee_type` is `"81000000"`; `tdx.td_attributes.*` are TDATTRIBUTES bits; `tdx.tcb_status`,
/// `tdx.advisory_ids` and `tdx.collateral_expiration_status` come from the verification. Custos adds the
/// per-component statuses, FMSPC, TCB date and, with an event log, `tdx.eventlog.*`. The schema is
/// `CustosPolicy.ClaimSchema`; a test checks that every path here is in it.
///
/// ```json
/// { "tdx": { "quote": { "header": {…}, "body": { "mr_td": "…", "rtmr_0": "…", … }, "type": "TD10" },
///            "td_attributes": { "debug": false, … }, "tcb_status": "UpToDate", "advisory_ids": [],
///            "collateral_expiration_status": "0", … },
///   "report_data": "…", "init_data": "…", "init_data_claims": {…}?, "runtime_data_claims": {…}? }
/// ```
public enum TDXClaims {
    /// The claims of `verified` at `time`.
    ///
    /// - Parameters:
    ///   - eventLog: the TD's CC event log, when it sent one: replayed and compared with the quote's RTMRs
    ///     (`tdx.eventlog.rtmrs_match`), its boot-services application digests listed (the UKI's Authenticode SHA-384).
    ///   - initDataClaims / runtimeDataClaims: the parsed init data and the KBS runtime data (nonce, TEE public
    ///     key), already checked against MRCONFIGID / REPORTDATA by the caller; omitted when `nil`.
    public static func document(
        _ verified: VerifiedQuote, at time: Date, eventLog: EventLog? = nil, initDataClaims: JSONValue? = nil,
        runtimeDataClaims: JSONValue? = nil
    ) -> JSONValue {
        var tdx = quoteClaims(verified.quote)
        tdx["tcb_status"] = .string(verified.tcbStatus.rawValue)
        tdx["advisory_ids"] = .array(verified.advisoryIDs.map { .string($0) })
        // Trustee's convention: "0" while every piece of collateral is valid, "1" once any has expired.
        tdx["collateral_expiration_status"] = time <= verified.collateralExpiry ? "0" : "1"
        tdx["collateral_expiry"] = .string(iso8601(verified.collateralExpiry))
        tdx["tcb_date"] = .string(verified.tcbDate)
        tdx["fmspc"] = .string(Hex.encode(verified.pck.fmspc))
        tdx["platform_tcb_status"] = .string(verified.platformStatus)
        if let module = verified.moduleStatus { tdx["module_tcb_status"] = .string(module) }
        tdx["qe_tcb_status"] = .string(verified.qeStatus.rawValue)
        if let eventLog { tdx["eventlog"] = eventLogClaims(eventLog, quote: verified.quote) }
        var document: [String: JSONValue] = [
            "tdx": .object(tdx),
            "report_data": .string(Hex.encode(verified.td.reportData)),
            "init_data": .string(Hex.encode(verified.td.mrConfigID)),
        ]
        if let initDataClaims { document["init_data_claims"] = initDataClaims }
        if let runtimeDataClaims { document["runtime_data_claims"] = runtimeDataClaims }
        return .object(document)
    }

    /// The members of `tdx` that come from the quote alone: `quote` (header, body, type) and `td_attributes`.
    public static func quoteClaims(_ quote: Quote) -> [String: JSONValue] {
        let header = quote.header
        let td = quote.body
        var body: [String: JSONValue] = [
            "tcb_svn": hex(td.teeTCBSVN), "mr_seam": hex(td.mrSeam), "mrsigner_seam": hex(td.mrSignerSeam),
            "seam_attributes": hex(td.seamAttributes), "td_attributes": hex(td.tdAttributes), "xfam": hex(td.xfam),
            "mr_td": hex(td.mrTD), "mr_config_id": hex(td.mrConfigID), "mr_owner": hex(td.mrOwner),
            "mr_owner_config": hex(td.mrOwnerConfig), "report_data": hex(td.reportData),
        ]
        for (index, rtmr) in td.rtmrs.enumerated() { body["rtmr_\(index)"] = hex(rtmr) }
        if let svn2 = td.teeTCBSVN2 { body["tee_tcb_svn2"] = hex(svn2) }
        if let service = td.mrServiceTD { body["mr_servicetd"] = hex(service) }
        let attributes = td.tdAttributesValue
        return [
            "quote": [
                "header": [
                    "version": hex(littleEndian(UInt64(header.version), bytes: 2)),
                    "att_key_type": hex(littleEndian(UInt64(header.attestationKeyType), bytes: 2)),
                    "tee_type": hex(littleEndian(UInt64(header.teeType), bytes: 4)),
                    "reserved": hex(
                        littleEndian(UInt64(header.reserved1), bytes: 2) + littleEndian(UInt64(header.reserved2), bytes: 2)),
                    "vendor_id": hex(header.qeVendorID),
                    "user_data": hex(header.userData),
                ],
                "body": .object(body),
                "type": td.bodyType == .td15 ? "TD15" : "TD10",
            ],
            // TDATTRIBUTES bits (Intel TDX module ABI, TD_ATTRIBUTES): 0 DEBUG, 28 SEPT_VE_DISABLE, 30 PKS, 31 KL,
            // 63 PERFMON.
            "td_attributes": [
                "debug": .bool(attributes & 1 != 0),
                "septve_disable": .bool(attributes & (1 << 28) != 0),
                "protection_keys": .bool(attributes & (1 << 30) != 0),
                "key_locker": .bool(attributes & (1 << 31) != 0),
                "perfmon": .bool(attributes & (1 << 63) != 0),
            ],
        ]
    }

    /// `tdx.eventlog`: whether the replay reproduces RTMR0-3, the number of events, and the SHA-384 digests of
    /// the EFI boot-services applications (a UKI's Authenticode digest appears here).
    static func eventLogClaims(_ log: EventLog, quote: Quote) -> JSONValue {
        let matches = (try? log.replay()).map { $0 == quote.body.rtmrs } ?? false
        return [
            "rtmrs_match": .bool(matches),
            "event_count": .integer(Int64(log.events.count)),
            "boot_applications": .array(log.bootServicesApplicationDigests.map { hex($0) }),
        ]
    }

    private static func hex(_ bytes: [UInt8]) -> JSONValue { .string(Hex.encode(bytes)) }

    private static func littleEndian(_ value: UInt64, bytes count: Int) -> [UInt8] {
        (0..<count).map { UInt8(truncatingIfNeeded: value >> (8 * UInt64($0))) }
    }

    private static func iso8601(_ date: Date) -> String { RFC3339.format(date, milliseconds: false) }
}
