import CustosAnchors
import CustosCrypto
import CustosTestSupport
import Foundation
import Testing

/// The pins must equal the values in the shared MANIFEST.tsv files (the provenance record), and installing must
/// refuse anything else.
@Suite(Requirement.testData)
struct AnchorStoreTests {
    /// A scratch Certs directory holding a copy of the repository's anchors.json.
    static func scratchStore() throws -> AnchorStore {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("custos-anchors-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        try FileManager.default.copyItem(
            at: TestData.packageRoot.appendingPathComponent("Certs/anchors.json"), to: dir.appendingPathComponent("anchors.json"))
        return try AnchorStore(directory: dir)
    }

    static func manifestSums() throws -> [String: String] {
        var sums: [String: String] = [:]
        for area in ["sev", "tdx"] {
            for line in try TestData.text("\(area)/MANIFEST.tsv").split(separator: "\n").dropFirst() {
                let fields = line.split(separator: "\t", omittingEmptySubsequences: false)
                guard fields.count > 4 else { continue }
                sums["\(area)/\(fields[0])"] = String(fields[4])
            }
        }
        return sums
    }

    @Test func pinsMatchTheManifestsAndCoverElevenAnchors() throws {
        let store = try Self.scratchStore()
        let sums = try Self.manifestSums()
        #expect(store.manifest.anchors.count == 11)
        #expect(Set(store.manifest.anchors.map(\.id)).count == 11)
        for pin in store.manifest.anchors {
            let recorded = sums[pin.mirrorPath]
            #expect(recorded == pin.sha256, "pin of \(pin.id)")
        }
        let intelPin = try store.pin("intel-sgx-root-ca")
        #expect(intelPin.sha256 == "44a0196b2b99f889b8e149e95b807a350e7424964399e885a7cbb8ccfab674d3")
        let lines = Set(store.manifest.anchors.map(\.productLine))
        #expect(lines == ["SGX/TDX", "Naples", "Rome", "Milan", "Genoa", "Turin"])
    }

    @Test func installFromMirrorThenLoadRechecksThePin() throws {
        let store = try Self.scratchStore()
        #expect(store.statuses().allSatisfy { !$0.installed })
        let results = store.install(fromMirror: TestData.root)
        #expect(results.allSatisfy { $0.installed }, "\(results.filter { !$0.installed })")
        let statuses = store.statuses()
        #expect(statuses.allSatisfy { $0.installed })
        let intel = try #require(statuses.first { $0.id == "intel-sgx-root-ca" })
        #expect(intel.subject == "C=US,ST=CA,L=Santa Clara,O=Intel Corporation,CN=Intel SGX Root CA")
        #expect(intel.notAfter != nil)
        // Key IDs from specs/sev.md §1.1 "Pinned roots".
        #expect(statuses.first { $0.id == "amd-milan-ark" }?.subject?.contains("94c38e4177d0479292a7ae671d083fb6") == true)
        #expect(try store.intelRootCA().fingerprintSHA256.hexString == intel.sha256)

        // A file swapped after installation is refused on every later load.
        let pin = try store.pin("amd-rome-ask")
        var bytes = try store.load(pin.id)
        bytes[100] ^= 0xff
        try Data(bytes).write(to: store.installedURL(pin))
        let error = #expect(throws: AnchorError.self) { try store.load(pin.id) }
        #expect(error?.code == .pinMismatch)
        let status = try #require(store.statuses().first { $0.id == pin.id })
        #expect(!status.installed)
        #expect(status.problem != nil)
    }

    @Test func installRefusesAMismatchedMirrorFile() throws {
        let store = try Self.scratchStore()
        // A mirror in which the Milan ARK is replaced by the Rome ARK.
        let mirror = FileManager.default.temporaryDirectory.appendingPathComponent("custos-mirror-\(UUID().uuidString)")
        let target = mirror.appendingPathComponent("sev/amd-roots/milan")
        try FileManager.default.createDirectory(at: target, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: TestData.url("sev/amd-roots/rome/ark.cert"), to: target.appendingPathComponent("ark.cert"))
        let results = store.install(fromMirror: mirror)
        let milan = try #require(results.first { $0.id == "amd-milan-ark" })
        #expect(!milan.installed)
        #expect(milan.message.contains("pinned"))
        #expect(!FileManager.default.fileExists(atPath: store.installedURL(try store.pin("amd-milan-ark")).path))
        #expect(results.filter { $0.installed }.isEmpty)
    }

    @Test func slicesOfACombinedVendorFile() throws {
        let store = try Self.scratchStore()
        // AMD ships ask_ark_<gen>.cert = ASK ‖ ARK.
        let combined = try TestData.bytes("sev/amd-roots/genoa/ask.cert") + TestData.bytes("sev/amd-roots/genoa/ark.cert")
        let ark = try AnchorStore.extract(combined, for: store.pin("amd-genoa-ark"))
        let ask = try AnchorStore.extract(combined, for: store.pin("amd-genoa-ask"))
        try AnchorStore.check(ark, against: store.pin("amd-genoa-ark"))
        try AnchorStore.check(ask, against: store.pin("amd-genoa-ask"))
        #expect(throws: AnchorError.self) { try AnchorStore.extract(Array(combined.prefix(100)), for: store.pin("amd-genoa-ark")) }
    }

    @Test func theDirectorysManifestMarksTheFolderButIsNotRead() throws {
        // No anchors.json: not a Certs directory. One that pins something else: the compiled-in pins stay.
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("custos-bad-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let error = #expect(throws: AnchorError.self) { try AnchorStore(directory: dir) }
        #expect(error?.code == .manifestInvalid)
        let forged = #"{"version":1,"anchors":[{"id":"intel-sgx-root-ca","sha256":"00"}]}"#
        try Data(forged.utf8).write(to: dir.appendingPathComponent("anchors.json"))
        let store = try AnchorStore(directory: dir)
        #expect(try store.pin("intel-sgx-root-ca").sha256 == "44a0196b2b99f889b8e149e95b807a350e7424964399e885a7cbb8ccfab674d3")
        #expect(store.manifest.anchors.count == 11)
    }
}
