public import CustosCrypto
internal import Foundation

// MARK: - Stub

/// The systemd-stub a UKI was built on, from its `.sdmagic` section
/// (`#### LoaderInfo: systemd-stub 254.26-1~bpo12+1 ####`).
public struct StubInfo: Sendable, Equatable, Codable {
    /// `systemd-stub`.
    public let name: String
    /// The full version string (`254.26-1~bpo12+1`).
    public let fullVersion: String
    /// The systemd major version (`254`), when the version starts with digits.
    public let majorVersion: Int?

    /// Parses the `.sdmagic` text.
    /// - Returns: nil when the text is not a `LoaderInfo` line.
    public init?(sdmagic text: String) {
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlinesAndNUL)
        let prefix = "#### LoaderInfo: ", suffix = " ####"
        guard trimmed.hasPrefix(prefix), trimmed.hasSuffix(suffix), trimmed.count > prefix.count + suffix.count else { return nil }
        let body = trimmed.dropFirst(prefix.count).dropLast(suffix.count)
        let parts = body.split(separator: " ", maxSplits: 1)
        guard parts.count == 2 else { return nil }
        name = String(parts[0])
        fullVersion = String(parts[1])
        majorVersion = Int(fullVersion.prefix { $0.isASCII && $0.isNumber })
    }
}

/// Which sections a systemd-stub version measures into PCR 11, in its fixed order (systemd `src/boot/efi/stub.c`,
/// `unified_sections[]`; `.pcrsig` is never measured).
public struct StubMeasurementRules: Sendable, Equatable {
    /// The measured sections, in measurement order.
    public let sections: [String]

    /// systemd-stub 252: neither `.uname` nor `.sbat` is measured.
    public static let v252 = StubMeasurementRules(sections: [".linux", ".osrel", ".cmdline", ".initrd", ".splash", ".dtb", ".pcrpkey"])
    /// systemd-stub 253–255 (checked against real measurements for 254): `.uname` and `.sbat` are measured too.
    public static let v254 = StubMeasurementRules(
        sections: [".linux", ".osrel", ".cmdline", ".initrd", ".splash", ".dtb", ".uname", ".sbat", ".pcrpkey"])

    /// The rules for a stub, or a ``UKIError/Code/unsupportedStub`` error.
    /// - Throws: when the stub is not systemd-stub 252–255 (256 added `.ucode`, 257 multi-profile UKIs).
    public static func rules(for stub: StubInfo?) throws(UKIError) -> StubMeasurementRules {
        guard let stub, stub.name == "systemd-stub", let major = stub.majorVersion else {
            throw UKIError(.unsupportedStub, "no systemd-stub LoaderInfo in .sdmagic; pass the measurement rules explicitly")
        }
        switch major {
        case 252: return .v252
        case 253...255: return .v254
        default: throw UKIError(.unsupportedStub, "systemd-stub \(stub.fullVersion): PCR 11 rules are known for 252–255 only")
        }
    }
}

// MARK: - UKI

/// A Unified Kernel Image: a systemd-stub PE with the kernel, initrd, command line and metadata as sections.
public struct UnifiedKernelImage: Sendable {
    /// The sections a UKI may carry (systemd-stub(7), UAPI "Unified Kernel Image" spec).
    public static let knownSections = [
        ".linux", ".initrd", ".cmdline", ".osrel", ".uname", ".sbat", ".pcrsig", ".pcrpkey", ".dtb", ".splash",
    ]
    /// Text sections larger than this are not decoded.
    public static let maxTextSize = 1 << 20

    public let image: PEImage

    /// Parses a file as a UKI.
    /// - Throws: ``PEParseError`` when the PE is malformed.
    public init(bytes: [UInt8]) throws(PEParseError) {
        image = try PEImage(bytes: bytes)
    }

    public init(image: PEImage) { self.image = image }

    /// The UKI sections present, in header order.
    public var ukiSections: [SectionHeader] { image.sections.filter { Self.knownSections.contains($0.name) } }

    /// Whether the image has a `.linux` section (the one thing that makes it a UKI).
    public var hasKernel: Bool { image.section(named: ".linux") != nil }

    /// The stub, from `.sdmagic`.
    public var stub: StubInfo? { text(".sdmagic").flatMap { StubInfo(sdmagic: $0) } }

    /// The embedded kernel command line (`.cmdline`, trailing NULs and newlines removed).
    public var cmdline: String? { text(".cmdline")?.trimmingCharacters(in: .whitespacesAndNewlinesAndNUL) }

    /// The kernel release (`.uname`).
    public var uname: String? { text(".uname")?.trimmingCharacters(in: .whitespacesAndNewlinesAndNUL) }

    /// The `.sbat` CSV text.
    public var sbat: String? { text(".sbat")?.trimmingCharacters(in: .nul) }

    /// The os-release fields of `.osrel` (os-release(5)).
    public var osRelease: [String: String]? { text(".osrel").map(OSRelease.parse) }

    /// A section's mapped contents decoded as UTF-8 (lossily), or nil when absent or larger than ``maxTextSize``.
    public func text(_ name: String) -> String? {
        guard let section = image.section(named: name), Int(section.virtualSize) <= Self.maxTextSize else { return nil }
        return String(decoding: image.mappedData(of: section, limit: Self.maxTextSize), as: UTF8.self)
    }

    // MARK: PCR 11

    /// One section's two PCR 11 measurements (EV_IPL events): the name with its NUL, then the mapped contents.
    public struct SectionMeasurement: Sendable, Equatable {
        public let section: String
        public let nameDigest: [UInt8]
        public let dataDigest: [UInt8]
    }

    /// The measurements systemd-stub makes into PCR 11 for this UKI, in order.
    ///
    /// For each section of `rules` that is present with VirtualSize > 0: `H(name + "\0")`, then `H(VirtualSize bytes
    /// as mapped)` — raw data zero-filled (or truncated) to VirtualSize.
    public func pcr11Measurements(rules: StubMeasurementRules, algorithm: DigestAlgorithm) -> [SectionMeasurement] {
        rules.sections.compactMap { name in
            guard let section = image.section(named: name), section.virtualSize > 0 else { return nil }
            let nameDigest = Digest.hash(algorithm, Array(name.utf8) + [0])
            var hasher = StreamingDigest(algorithm)
            let size = Int(section.virtualSize)
            let raw = image.rawData(of: section).prefix(size)
            hasher.update(raw)
            // Zero fill without allocating VirtualSize bytes at once (it comes from the file).
            var left = size - raw.count
            let zeros = [UInt8](repeating: 0, count: min(left, 1 << 16))
            while left > 0 {
                let chunk = min(left, zeros.count)
                hasher.update(zeros[0..<chunk])
                left -= chunk
            }
            return SectionMeasurement(section: name, nameDigest: nameDigest, dataDigest: hasher.finalize())
        }
    }

    /// The PCR 11 value right after systemd-stub (before systemd-pcrphase), starting from zero.
    /// - Parameters:
    ///   - algorithm: the PCR bank.
    ///   - rules: the stub's rules; nil detects them from `.sdmagic`.
    /// - Throws: ``UKIError/Code/unsupportedStub`` when `rules` is nil and the stub is unknown.
    public func predictPCR11(_ algorithm: DigestAlgorithm, rules: StubMeasurementRules? = nil) throws(UKIError) -> [UInt8] {
        let rules: StubMeasurementRules = if let rules { rules } else { try StubMeasurementRules.rules(for: stub) }
        var pcr = [UInt8](repeating: 0, count: algorithm.byteCount)
        for measurement in pcr11Measurements(rules: rules, algorithm: algorithm) {
            pcr = Digest.hash(algorithm, pcr + measurement.nameDigest)
            pcr = Digest.hash(algorithm, pcr + measurement.dataDigest)
        }
        return pcr
    }

    /// The Authenticode digest of the UKI (what OVMF/TDVF extend into PCR 4 / RTMR1).
    public func authenticodeDigest(_ algorithm: DigestAlgorithm, padding: AuthenticodeDigest.Padding = .asIs) -> [UInt8] {
        AuthenticodeDigest.compute(image, algorithm: algorithm, padding: padding)
    }
}

// MARK: - os-release

/// os-release(5) parsing: `KEY=value` lines, values optionally in single or double quotes with shell escapes.
public enum OSRelease {
    public static func parse(_ text: String) -> [String: String] {
        var fields: [String: String] = [:]
        for rawLine in text.split(whereSeparator: { $0 == "\n" || $0 == "\r" }) {
            let line = rawLine.trimmingCharacters(in: .whitespacesAndNewlinesAndNUL)
            guard !line.isEmpty, !line.hasPrefix("#"), let equals = line.firstIndex(of: "=") else { continue }
            let key = String(line[..<equals])
            guard !key.isEmpty, key.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") }) else { continue }
            fields[key] = unquote(line[line.index(after: equals)...])
        }
        return fields
    }

    static func unquote(_ value: Substring) -> String {
        var out = ""
        var quote: Character? = nil
        var escaped = false
        for c in value {
            if escaped {
                out.append(c)
                escaped = false
            } else if c == "\\" && quote != "'" {
                escaped = true
            } else if let q = quote, c == q {
                quote = nil
            } else if quote == nil && (c == "\"" || c == "'") {
                quote = c
            } else {
                out.append(c)
            }
        }
        return out
    }
}

// MARK: - Helpers

extension CharacterSet {
    static let nul = CharacterSet(charactersIn: "\0")
    static let whitespacesAndNewlinesAndNUL = CharacterSet.whitespacesAndNewlines.union(.nul)
}
