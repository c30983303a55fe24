public import CustosCrypto
import CustosSEV
public import Foundation

/// One pinned trust anchor (``AnchorManifest/pinned``; documented in `Certs/anchors.json`).
public struct AnchorPin: Codable, Sendable, Equatable {
    public struct Slice: Codable, Sendable, Equatable {
        public let offset: Int
        public let length: Int
    }
    /// Stable identifier, e.g. `intel-sgx-root-ca`, `amd-milan-ask`.
    public let id: String
    public let vendor: String
    /// `SGX/TDX`, `Naples`, `Rome`, `Milan`, `Genoa`, `Turin`.
    public let productLine: String
    /// `root CA`, `ARK`, `ASK`.
    public let role: String
    /// `x509-der` or `amd-sev` (AMD's binary ARK/ASK format).
    public let format: String
    /// Path under the Certs directory where the installed file lives.
    public let file: String
    /// SHA-256 of the file exactly as the vendor ships it.
    public let sha256: String
    /// The vendor's download URL.
    public let url: String
    /// The anchor's bytes within the downloaded file, when the vendor ships several in one (AMD's `ask_ark_*.cert`).
    public let urlSlice: Slice?
    /// The path of the same file in an offline mirror laid out like `../shared/testdata`.
    public let mirrorPath: String
    public let note: String?
}

/// The list of pins: compiled in as ``AnchorManifest/pinned``, documented as `Certs/anchors.json` (same schema).
public struct AnchorManifest: Codable, Sendable {
    public let version: Int
    public let anchors: [AnchorPin]
}

/// The error type of ``AnchorStore``.
public struct AnchorError: Error, Equatable, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let name: String
        public init(_ name: String) { self.name = name }
        public var description: String { name }
        public static let manifestInvalid = Code("manifestInvalid")
        public static let unknownAnchor = Code("unknownAnchor")
        public static let notInstalled = Code("notInstalled")
        public static let pinMismatch = Code("pinMismatch")
        public static let sourceMissing = Code("sourceMissing")
        public static let writeFailed = Code("writeFailed")
        public static let unparsable = Code("unparsable")
    }
    public let code: Code
    public let reason: String
    public init(_ code: Code, _ reason: String) {
        self.code = code
        self.reason = reason
    }
    public static func == (lhs: Self, rhs: Self) -> Bool { lhs.code == rhs.code }
    public var description: String { "\(code): \(reason)" }
}

/// What `custos certs list` reports for one anchor.
public struct AnchorStatus: Sendable, Codable, Equatable {
    public let id: String
    public let vendor: String
    public let productLine: String
    public let role: String
    public let file: String
    public let sha256: String
    public let url: String
    public let installed: Bool
    /// X.509: the subject DN. AMD: the key ID (AMD certificates carry no names).
    public let subject: String?
    public let notBefore: Date?
    public let notAfter: Date?
    /// Why an existing file is not counted as installed (a pin mismatch, say).
    public let problem: String?
}

/// The pinned trust anchors and the directory they are installed in.
///
/// Every load re-checks the file's SHA-256 against its pin, so a file swapped after installation is refused.
public struct AnchorStore: Sendable {
    /// The Certs directory (holding `anchors.json` and the installed files).
    public let directory: URL
    public let manifest: AnchorManifest

    /// Opens the Certs directory with the compiled-in pins (``AnchorManifest/pinned``).
    ///
    /// The directory's `anchors.json` documents the pins and marks the folder as a Certs directory (so a mistyped
    /// `--certs` path is an error, not a new empty tree), but its content is **not read**: were the pins read from
    /// the folder that holds the anchors, whoever can write it could replace pin and anchor together (issue 11 §5).
    /// - Throws: ``AnchorError/Code-swift.struct/manifestInvalid`` when `directory` holds no `anchors.json`.
    public init(directory: URL) throws(AnchorError) {
        let marker = directory.appendingPathComponent("anchors.json")
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: marker.path, isDirectory: &isDirectory), !isDirectory.boolValue else {
            throw AnchorError(
                .manifestInvalid,
                "\(directory.path) is not a Certs directory: it has no anchors.json (the pins are compiled in; the file marks the folder)")
        }
        self.init(directory: directory, manifest: .pinned)
    }

    /// A store over `manifest` instead of the compiled-in pins (tests and tools that pin test anchors).
    public init(directory: URL, manifest: AnchorManifest) {
        self.directory = directory
        self.manifest = manifest
    }

    /// The Certs directory to use: `explicit`, else `$CUSTOS_CERTS`, else `./Certs`, else the `Certs` folder of the
    /// source tree the executable was built in (`.build/<config>/custos` → `../../Certs`).
    public static func locateDirectory(explicit: String? = nil) -> URL {
        if let explicit { return URL(fileURLWithPath: explicit) }
        if let env = ProcessInfo.processInfo.environment["CUSTOS_CERTS"], !env.isEmpty { return URL(fileURLWithPath: env) }
        let fm = FileManager.default
        let local = URL(fileURLWithPath: fm.currentDirectoryPath).appendingPathComponent("Certs")
        if fm.fileExists(atPath: local.appendingPathComponent("anchors.json").path) { return local }
        var candidate = URL(fileURLWithPath: CommandLine.arguments.first ?? ".").resolvingSymlinksInPath().deletingLastPathComponent()
        for _ in 0..<5 {
            let certs = candidate.appendingPathComponent("Certs")
            if fm.fileExists(atPath: certs.appendingPathComponent("anchors.json").path) { return certs }
            candidate.deleteLastPathComponent()
        }
        return local
    }

    /// The offline mirror: `$CUSTOS_TESTDATA`, else `../shared/testdata`.
    public static func defaultMirror() -> URL {
        if let env = ProcessInfo.processInfo.environment["CUSTOS_TESTDATA"], !env.isEmpty { return URL(fileURLWithPath: env) }
        return URL(fileURLWithPath: FileManager.default.currentDirectoryPath).appendingPathComponent("../shared/testdata").standardized
    }

    public func pin(_ id: String) throws(AnchorError) -> AnchorPin {
        guard let pin = manifest.anchors.first(where: { $0.id == id }) else {
            throw AnchorError(.unknownAnchor, "no pinned anchor \(id)")
        }
        return pin
    }

    public func installedURL(_ pin: AnchorPin) -> URL { directory.appendingPathComponent(pin.file) }

    /// Checks `bytes` against `pin`.
    public static func check(_ bytes: [UInt8], against pin: AnchorPin) throws(AnchorError) {
        let actual = Hex.encode(Digest.sha256(bytes))
        guard actual == pin.sha256.lowercased() else {
            throw AnchorError(.pinMismatch, "\(pin.id): SHA-256 is \(actual), pinned \(pin.sha256)")
        }
    }

    /// The installed bytes of an anchor, after re-checking its pin.
    public func load(_ id: String) throws(AnchorError) -> [UInt8] {
        let pin = try pin(id)
        let url = installedURL(pin)
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw AnchorError(.notInstalled, "\(pin.id) is not installed at \(url.path): run `custos certs install`")
        }
        let bytes = [UInt8](data)
        try Self.check(bytes, against: pin)
        return bytes
    }

    /// The pinned Intel SGX Root CA.
    public func intelRootCA() throws(AnchorError) -> Certificate {
        let bytes = try load("intel-sgx-root-ca")
        do { return try Certificate(derEncoded: bytes) } catch { throw AnchorError(.unparsable, "Intel SGX Root CA: \(error)") }
    }

    /// Status of every pinned anchor.
    public func statuses() -> [AnchorStatus] {
        manifest.anchors.map { pin in
            var subject: String? = nil
            var notBefore: Date? = nil
            var notAfter: Date? = nil
            var problem: String? = nil
            var installed = false
            do throws(AnchorError) {
                let bytes = try load(pin.id)
                installed = true
                if pin.format == "x509-der", let cert = try? Certificate(derEncoded: bytes) {
                    subject = cert.subject
                    notBefore = cert.notBefore
                    notAfter = cert.notAfter
                } else if pin.format == "amd-sev", let cert = try? AMDCertificate(bytes: bytes) {
                    // AMD certificates carry no names or validity; the key ID is what sevctl prints.
                    subject = "AMD \(pin.role) \(pin.productLine), key id \(Hex.encode(cert.keyID)), RSA-\(cert.modulusBits)"
                }
            } catch {
                if error.code != .notInstalled { problem = error.reason }
            }
            return AnchorStatus(
                id: pin.id, vendor: pin.vendor, productLine: pin.productLine, role: pin.role, file: pin.file, sha256: pin.sha256,
                url: pin.url, installed: installed, subject: subject, notBefore: notBefore, notAfter: notAfter, problem: problem)
        }
    }

    /// Outcome of installing one anchor.
    public struct InstallResult: Sendable, Codable, Equatable {
        public let id: String
        public let installed: Bool
        public let message: String
        public init(id: String, installed: Bool, message: String) {
            self.id = id
            self.installed = installed
            self.message = message
        }
    }

    /// Installs `bytes` as `pin` after checking the pin; writes atomically.
    public func install(_ bytes: [UInt8], as pin: AnchorPin) throws(AnchorError) {
        try Self.check(bytes, against: pin)
        let url = installedURL(pin)
        do {
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Data(bytes).write(to: url, options: .atomic)
        } catch {
            throw AnchorError(.writeFailed, "cannot write \(url.path): \(error.localizedDescription)")
        }
    }

    /// Installs every anchor from an offline mirror; each file is refused unless it matches its pin.
    public func install(fromMirror mirror: URL) -> [InstallResult] {
        manifest.anchors.map { pin in
            let source = mirror.appendingPathComponent(pin.mirrorPath)
            guard let data = FileManager.default.contents(atPath: source.path) else {
                return InstallResult(id: pin.id, installed: false, message: "not found in mirror: \(source.path)")
            }
            do throws(AnchorError) {
                try install([UInt8](data), as: pin)
                return InstallResult(id: pin.id, installed: true, message: "installed from \(source.path)")
            } catch {
                return InstallResult(id: pin.id, installed: false, message: error.reason)
            }
        }
    }

    /// Cuts the anchor's bytes out of a downloaded vendor file.
    public static func extract(_ downloaded: [UInt8], for pin: AnchorPin) throws(AnchorError) -> [UInt8] {
        guard let slice = pin.urlSlice else { return downloaded }
        guard slice.offset >= 0, slice.length > 0, slice.offset <= downloaded.count, slice.length <= downloaded.count - slice.offset else {
            throw AnchorError(
                .sourceMissing,
                "\(pin.id): downloaded file is \(downloaded.count) bytes, expected the anchor at \(slice.offset)+\(slice.length)")
        }
        return Array(downloaded[slice.offset..<(slice.offset + slice.length)])
    }
}
