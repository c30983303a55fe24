public import Foundation

/// The signed-UKI fixtures, built by `scripts/uki/build-fixtures.sh` from the shared recipe, and what the peer tools
/// (osslsigncode, pesign, sbverify, systemd-measure) said about them (`peers.txt`).
///
/// Fixtures are never committed: the first test that asks builds them (once per test process; the script itself
/// caches by recipe version under `.build-fixtures/uki`).
public enum UKIFixtures {
    /// The four recipe variants: builder × stub version.
    public static let variantNames = ["ukify-254", "objcopy-252", "ukify-252", "objcopy-254"]

    /// Where the fixtures live (`$UKI_FIXTURES`, default `<package>/.build-fixtures/uki`).
    public static var root: URL {
        if let env = ProcessInfo.processInfo.environment["UKI_FIXTURES"], !env.isEmpty { return URL(fileURLWithPath: env) }
        return TestData.packageRoot.appendingPathComponent(".build-fixtures/uki")
    }

    public static var scriptsDirectory: URL { TestData.packageRoot.appendingPathComponent("scripts/uki") }

    /// Whether the fixtures exist or can be built here (the recipe needs root to install its packages).
    public static var canBuild: Bool {
        let built = variantNames.allSatisfy { FileManager.default.fileExists(atPath: root.appendingPathComponent("\($0)/peers.txt").path) }
        let recipes = TestData.packageRoot.appendingPathComponent("../shared/recipes/uki/make-signed-uki.sh").standardized.path
        return built || (geteuid() == 0 && FileManager.default.fileExists(atPath: recipes))
    }

    public static let skipReason = "UKI fixtures are absent and cannot be built here (needs root and ../shared/recipes)"

    /// Builds (or reuses) every variant once per process.
    private static let built: Result<[String: Variant], FixtureError> = {
        do {
            let log = try runScript("build-fixtures.sh", arguments: variantNames)
            var variants: [String: Variant] = [:]
            for name in variantNames { variants[name] = try Variant(name: name, directory: root.appendingPathComponent(name)) }
            _ = log
            return .success(variants)
        } catch let error as FixtureError {
            return .failure(error)
        } catch {
            return .failure(FixtureError(message: "\(error)"))
        }
    }()

    /// A built variant.
    /// - Throws: ``FixtureError`` when the build failed (with the script's output).
    public static func variant(_ name: String) throws -> Variant {
        try built.get()[name] ?? { throw FixtureError(message: "no variant \(name)") }()
    }

    /// Runs one of `scripts/uki/*.sh` and returns its stdout; throws with stdout+stderr when it exits non-zero.
    public static func runScript(_ script: String, arguments: [String] = [], environment: [String: String] = [:]) throws -> String {
        let result = try run(scriptsDirectory.appendingPathComponent(script).path, arguments: arguments, environment: environment)
        guard result.status == 0 else {
            throw FixtureError(message: "\(script) exited with \(result.status):\n\(result.stdout)\n\(result.stderr)")
        }
        return result.stdout
    }

    /// Runs a program and collects its output.
    public static func run(_ path: String, arguments: [String], environment: [String: String] = [:]) throws -> (
        status: Int32, stdout: String, stderr: String
    ) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        // Read both pipes concurrently so neither fills up and blocks the child.
        let errData = LockedData()
        let reader = Thread { errData.set(err.fileHandleForReading.readDataToEndOfFile()) }
        reader.start()
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        while !errData.isSet { usleep(10_000) }
        return (process.terminationStatus, String(decoding: outData, as: UTF8.self), String(decoding: errData.get(), as: UTF8.self))
    }

    /// One built variant: its files and the peers' findings.
    public struct Variant: Sendable {
        public let name: String
        public let directory: URL
        public let peers: Peers

        init(name: String, directory: URL) throws {
            self.name = name
            self.directory = directory
            let text = try String(contentsOf: directory.appendingPathComponent("peers.txt"), encoding: .utf8)
            peers = Peers(text)
        }

        public func url(_ file: String) -> URL { directory.appendingPathComponent(file) }
        public func bytes(_ file: String) throws -> [UInt8] { [UInt8](try Data(contentsOf: url(file))) }
        /// The enrolled db certificate (PEM) and the not-enrolled "wrong" one.
        public var dbCertificate: URL { url("keys/db.crt") }
        public var wrongCertificate: URL { url("keys/wrong.crt") }
    }

    /// What the peer tools reported, from `peers.txt`.
    public struct Peers: Sendable {
        /// systemd-boot-efi package version the recipe used (`254.26-1~bpo12+1`).
        public var stubPackageVersion = ""
        /// `pesign -h` SHA-256 per file.
        public var pesign: [String: String] = [:]
        /// `pesign -h` of the unsigned image zero-padded to 8 bytes.
        public var pesignPaddedUnsigned: String?
        /// `osslsigncode verify` per file: the signature's algorithm, the signed digest and the recomputed one.
        public var osslsigncode: [String: (algorithm: String, current: String, calculated: String)] = [:]
        /// Verdicts per file and tool (`sbverify`, `osslsigncode`): true = OK.
        public var verdicts: [String: [String: Bool]] = [:]
        /// systemd-measure 254's PCR 11 per bank (`sha256`, `sha384`).
        public var pcr11: [String: String] = [:]
        public var sizes: [String: Int] = [:]

        init(_ text: String) {
            for line in text.split(separator: "\n") {
                let f = line.split(separator: " ").map(String.init)
                guard let kind = f.first else { continue }
                switch (kind, f.count) {
                case ("stub", 2): stubPackageVersion = f[1]
                case ("size", 3): sizes[f[1]] = Int(f[2])
                case ("pesign", 4): pesign[f[1]] = f[3]
                case ("pesign-padded", 4): pesignPaddedUnsigned = f[3]
                case ("osslsigncode", 7): osslsigncode[f[1]] = (f[2], f[4], f[6])
                case ("verdict", 4): verdicts[f[1], default: [:]][f[2]] = f[3] == "OK"
                case ("pcr11", 3): pcr11[f[1]] = f[2]
                default: continue
                }
            }
        }
    }

    public struct FixtureError: Error, CustomStringConvertible {
        public let message: String
        public var description: String { message }
    }
}

/// A tiny lock-protected buffer for the stderr reader thread.
private final class LockedData: @unchecked Sendable {  // all state behind `lock`
    private let lock = NSLock()
    private var data = Data()
    private var done = false
    func set(_ value: Data) {
        lock.withLock {
            data = value; done = true
        }
    }
    var isSet: Bool { lock.withLock { done } }
    func get() -> Data { lock.withLock { data } }
}
