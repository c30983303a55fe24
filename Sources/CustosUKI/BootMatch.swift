import CustosCrypto

// MARK: - Replayed events

/// A measurement register of a confidential VM, named as in the CC event log (UEFI 2.10 § 38.4,
/// `EFI_CC_MEASUREMENT_PROTOCOL`): MR index 0 is MRTD, 1–4 are RTMR0–3.
public struct MeasurementRegister: Hashable, Sendable, CustomStringConvertible {
    /// The CC MR index (0 = MRTD, 1 = RTMR0, 2 = RTMR1, 3 = RTMR2, 4 = RTMR3).
    public let ccMRIndex: UInt32

    public init(ccMRIndex: UInt32) { self.ccMRIndex = ccMRIndex }

    /// RTMR `n` (0…3).
    public static func rtmr(_ n: UInt32) -> MeasurementRegister { MeasurementRegister(ccMRIndex: n + 1) }

    /// The RTMR a TPM PCR maps to on TDX (TDVF design guide: PCR 0 → MRTD, 1 and 7 → RTMR0, 2–6 → RTMR1,
    /// 8–15 → RTMR2), or nil for PCRs with no RTMR.
    public static func forTPMPCR(_ pcr: UInt32) -> MeasurementRegister? {
        switch pcr {
        case 0: MeasurementRegister(ccMRIndex: 0)
        case 1, 7: .rtmr(0)
        case 2...6: .rtmr(1)
        case 8...15: .rtmr(2)
        default: nil
        }
    }

    public var description: String { ccMRIndex == 0 ? "MRTD" : "RTMR\(ccMRIndex - 1)" }
}

/// One event of an event log that was already replayed against the quoted registers (the TDX module parses and
/// replays the CCEL; this module only needs the register and the SHA-384 digest of each event).
public struct ReplayedEvent: Sendable, Equatable {
    /// `EV_EFI_BOOT_SERVICES_APPLICATION` (TCG PC Client PFP § 10.4.1): a PE image the firmware started.
    public static let efiBootServicesApplication: UInt32 = 0x8000_0003
    /// `EV_IPL`: systemd-stub's section measurements.
    public static let ipl: UInt32 = 0x0000_000D

    public let register: MeasurementRegister
    /// The event type, when known (nil matches any type).
    public let eventType: UInt32?
    /// The event's SHA-384 digest (the one extended into the register).
    public let digest: [UInt8]

    public init(register: MeasurementRegister, eventType: UInt32? = nil, digest: [UInt8]) {
        self.register = register
        self.eventType = eventType
        self.digest = digest
    }
}

// MARK: - Matching

/// What the event log says about a UKI.
public enum UKIBootVerdict: Sendable, Equatable {
    /// RTMR1 holds an application event whose digest is the UKI's Authenticode SHA-384.
    case booted(UKIBootEvidence)
    /// No such event, or systemd-stub's section events contradict the UKI.
    case notBooted(reason: String)

    public var booted: Bool {
        if case .booted = self { return true }
        return false
    }
}

/// How the UKI was found in the log.
public struct UKIBootEvidence: Sendable, Equatable {
    /// What RTMR2 (PCR 11) says about the UKI's sections.
    public enum Sections: Sendable, Equatable {
        /// The stub's measurements of every measured section appear, in order, in RTMR2.
        case matched(count: Int)
        /// RTMR2 has no stub section events (a stub that does not measure into RTMRs).
        case notMeasured
    }

    /// The index, in the given event list, of the RTMR1 application event.
    public let applicationEventIndex: Int
    /// The UKI's Authenticode SHA-384.
    public let authenticodeSHA384: [UInt8]
    public let sections: Sections
}

extension UnifiedKernelImage {
    /// The digest of the RTMR1 event that the firmware (TDVF) logs when it starts this UKI: its Authenticode SHA-384
    /// (padded as the signing tools pad, so an unsigned build predicts its signed copy — see
    /// ``AuthenticodeDigest/Padding/signingAlignment``; pass `.asIs` for an image booted unsigned).
    public func rtmr1EventDigest(padding: AuthenticodeDigest.Padding = .asIs) -> [UInt8] {
        authenticodeDigest(.sha384, padding: padding)
    }

    /// Decides whether this UKI is what a TD booted, from its replayed event log.
    ///
    /// The UKI booted when RTMR1 has an `EV_EFI_BOOT_SERVICES_APPLICATION` event (or an event of unknown type) whose
    /// digest is the UKI's Authenticode SHA-384. When RTMR2 carries systemd-stub `EV_IPL` events, their SHA-384
    /// digests must also contain, in order, the stub's measurements of this UKI's sections; a contradiction is a
    /// `notBooted`.
    /// - Parameters:
    ///   - events: the replayed events, in log order.
    ///   - rules: the stub's measurement rules; nil detects them (unknown stubs skip the section check).
    public func bootVerdict(events: [ReplayedEvent], rules: StubMeasurementRules? = nil) -> UKIBootVerdict {
        let digest = rtmr1EventDigest()
        let rtmr1 = MeasurementRegister.rtmr(1)
        guard
            let index = events.firstIndex(where: {
                $0.register == rtmr1 && ($0.eventType == nil || $0.eventType == ReplayedEvent.efiBootServicesApplication)
                    && constantTimeEqual($0.digest, digest)
            })
        else {
            return .notBooted(reason: "no RTMR1 application event has the UKI's Authenticode SHA-384 \(digest.hexString)")
        }
        let stubEvents = events[(index + 1)...].filter {
            $0.register == .rtmr(2) && ($0.eventType == nil || $0.eventType == ReplayedEvent.ipl)
        }.map(\.digest)
        guard !stubEvents.isEmpty, let rules = rules ?? (try? StubMeasurementRules.rules(for: stub)) else {
            return .booted(UKIBootEvidence(applicationEventIndex: index, authenticodeSHA384: digest, sections: .notMeasured))
        }
        let expected = pcr11Measurements(rules: rules, algorithm: .sha384).flatMap { [$0.nameDigest, $0.dataDigest] }
        guard stubEvents.count >= expected.count, Array(stubEvents.prefix(expected.count)) == expected else {
            return .notBooted(
                reason: "RTMR2's systemd-stub events do not match this UKI's sections (\(rules.sections.joined(separator: " ")))")
        }
        return .booted(
            UKIBootEvidence(applicationEventIndex: index, authenticodeSHA384: digest, sections: .matched(count: expected.count / 2)))
    }
}
