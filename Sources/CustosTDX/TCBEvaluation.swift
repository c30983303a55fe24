/// TCB level matching and status merging (spec §2.5; QVL `TcbLevelCheck.cpp`, `TdxModuleCheck.cpp`,
/// `TDRelaunchCheck.cpp`). Not "worst wins": the converge rules of §2.5 steps 5 and 7 (spec §8 trap 11).
struct TCBEvaluation {
    /// Internal status lattice including Revoked (which rejects).
    enum Status: Equatable {
        case upToDate, swHardeningNeeded, configurationNeeded, configurationAndSWHardeningNeeded
        case outOfDate, outOfDateConfigurationNeeded, revoked, tdRelaunchAdvised, tdRelaunchAdvisedConfigurationNeeded

        init(_ text: String) throws(TDXError) {
            switch text {
            case "UpToDate": self = .upToDate
            case "SWHardeningNeeded": self = .swHardeningNeeded
            case "ConfigurationNeeded": self = .configurationNeeded
            case "ConfigurationAndSWHardeningNeeded": self = .configurationAndSWHardeningNeeded
            case "OutOfDate": self = .outOfDate
            case "OutOfDateConfigurationNeeded": self = .outOfDateConfigurationNeeded
            case "Revoked": self = .revoked
            default: throw TDXError(.tcbUnrecognizedStatus, "unrecognized TCB status \"\(text)\"")
            }
        }

        var isConfiguration: Bool {
            switch self {
            case .configurationNeeded, .configurationAndSWHardeningNeeded, .outOfDateConfigurationNeeded,
                .tdRelaunchAdvisedConfigurationNeeded:
                true
            default: false
            }
        }

        /// Applies an OutOfDate from the TDX module or the QE (spec §2.5 steps 5, 7).
        func outdated() -> Status {
            switch self {
            case .upToDate, .swHardeningNeeded: .outOfDate
            case .configurationNeeded, .configurationAndSWHardeningNeeded: .outOfDateConfigurationNeeded
            default: self
            }
        }
    }

    let status: TCBStatus
    let platformStatus: String
    let platformAdvisoryIDs: [String]
    let moduleStatus: String?
    let moduleAdvisoryIDs: [String]
    let tcbDate: String

    init(quote: Quote, pck: PCKExtension, tcbInfo: TCBInfo, qeStatus: QETCBStatus) throws(TDXError) {
        let svn = quote.body.teeTCBSVN
        // Steps 1–3: first SGX-matching level, then the first (same or later) level whose TDX components match.
        var sgxLevel: TCBLevel? = nil
        var tdxLevel: TCBLevel? = nil
        let tdxIndexes = svn[1] > 0 ? 2..<16 : 0..<16
        for level in tcbInfo.tcbLevels {
            let sgxMatches =
                zip(pck.tcbComponents, level.sgxComponents).allSatisfy { $0 >= $1 } && pck.pceSVN >= level.pceSVN
            guard sgxMatches else { continue }
            if sgxLevel == nil { sgxLevel = level }
            if tdxIndexes.allSatisfy({ Int(svn[$0]) >= level.tdxComponents[$0] }) {
                tdxLevel = level
                break
            }
        }
        guard let sgxLevel, let tdxLevel else {
            throw TDXError(.tcbNotSupported, "no TCB level matches the platform (PCK SVNs, PCESVN, TEE_TCB_SVN)")
        }
        // Step 4: TDX module status.
        var module: Status = .upToDate
        var moduleLevel: ISVSVNLevel? = nil
        if svn[1] > 0 {
            guard let identity = tcbInfo.moduleIdentity(majorVersion: svn[1]) else {
                throw TDXError(.tdxModuleMismatch, "no TDX module identity for major version \(svn[1])")
            }
            guard let level = identity.tcbLevels.first(where: { Int(svn[0]) >= $0.isvSVN }) else {
                throw TDXError(.tcbNotSupported, "no \(identity.id) TCB level matches TDX module SVN \(svn[0])")
            }
            module = try Status(level.tcbStatus)
            guard [.upToDate, .outOfDate, .revoked].contains(module) else {
                throw TDXError(.tcbUnrecognizedStatus, "TDX module status \(level.tcbStatus) is not allowed")
            }
            moduleLevel = level
        }
        // Step 5: converge platform and module.
        var tdx = try Status(tdxLevel.tcbStatus)
        switch module {
        case .outOfDate: tdx = tdx.outdated()
        case .revoked: tdx = .revoked
        default: break
        }
        guard tdx != .revoked else { throw TDXError(.tcbRevoked, "the TCB level (\(tdxLevel.tcbDate)) or TDX module is Revoked") }
        // Step 6: TD relaunch (TD15 bodies only).
        if quote.body.bodyType == .td15, let svn2 = quote.body.teeTCBSVN2, ![.outOfDate, .revoked, .notSupported].contains(qeStatus),
            [.upToDate, .swHardeningNeeded, .configurationNeeded, .configurationAndSWHardeningNeeded].contains(
                try Status(sgxLevel.tcbStatus)),
            [.outOfDate, .outOfDateConfigurationNeeded].contains(tdx), module == .outOfDate, let newest = tcbInfo.tcbLevels.first
        {
            let relaunch: Bool
            if svn2[1] == 0 {
                relaunch = Int(svn2[0]) >= newest.tdxComponents[0] && Int(svn2[2]) >= newest.tdxComponents[2]
            } else if let identity = tcbInfo.moduleIdentity(majorVersion: svn2[1]), let top = identity.tcbLevels.first {
                relaunch = Int(svn2[0]) >= top.isvSVN && Int(svn2[2]) >= newest.tdxComponents[2]
            } else {
                relaunch = false
            }
            if relaunch {
                let configuration = try Status(sgxLevel.tcbStatus).isConfiguration || tdx.isConfiguration
                tdx = configuration ? .tdRelaunchAdvisedConfigurationNeeded : .tdRelaunchAdvised
            }
        }
        // Step 7: converge with the QE.
        switch qeStatus {
        case .upToDate: break
        case .outOfDate: tdx = tdx.outdated()
        case .revoked: throw TDXError(.tcbRevoked, "the Quoting Enclave's TCB level is Revoked")
        case .notSupported: throw TDXError(.tcbNotSupported, "no QE Identity TCB level matches the QE ISVSVN")
        }
        let final: TCBStatus =
            switch tdx {
            case .upToDate: .upToDate
            case .swHardeningNeeded: .swHardeningNeeded
            case .configurationNeeded: .configurationNeeded
            case .configurationAndSWHardeningNeeded: .configurationAndSWHardeningNeeded
            case .outOfDate: .outOfDate
            case .outOfDateConfigurationNeeded: .outOfDateConfigurationNeeded
            case .tdRelaunchAdvised: .tdRelaunchAdvised
            case .tdRelaunchAdvisedConfigurationNeeded: .tdRelaunchAdvisedConfigurationNeeded
            case .revoked: .outOfDate  // unreachable: Revoked threw above
            }
        status = final
        platformStatus = tdxLevel.tcbStatus
        platformAdvisoryIDs = tdxLevel.advisoryIDs
        moduleStatus = moduleLevel?.tcbStatus
        moduleAdvisoryIDs = moduleLevel?.advisoryIDs ?? []
        tcbDate = tdxLevel.tcbDate
    }
}
