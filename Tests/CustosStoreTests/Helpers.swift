import CustosCrypto
import Foundation
import GRDB
import Testing

@testable import CustosStore

/// A temporary data directory, removed when the value is dropped.
final class TemporaryDirectory: Sendable {
    let url: URL

    init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("custos-store-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(at: url) }

    var data: DataDirectory { DataDirectory(url) }
    func path(_ name: String) -> String { url.appendingPathComponent(name).path }
}

enum Fixtures {
    /// A fixed time with whole milliseconds (the store keeps milliseconds).
    static let t0 = Date(timeIntervalSince1970: 1_800_000_000)

    /// Opens a fresh store (file master key) with a tenant `acme`.
    static func store(in dir: TemporaryDirectory, tenants: [String] = ["acme"]) async throws -> SQLiteStore {
        let store = try dir.data.open(environment: [:], create: true).store
        for tenant in tenants { _ = try await store.createTenant(id: tenant, displayName: tenant.capitalized, now: t0) }
        return store
    }

    static func secret(_ text: String) -> SecretBytes { SecretBytes(Array(text.utf8)) }

    static func appraisal(
        tenant: String = "acme", workload: String = "wl-1", at offset: TimeInterval = 0, status: AppraisalStatus = .affirming,
        tee: String = "tdx"
    ) -> Appraisal {
        Appraisal(
            tenantId: tenant, workloadId: workload, tee: tee, createdAt: t0.addingTimeInterval(offset), status: status,
            policyId: "tdx-prod", policySHA256: String(repeating: "ab", count: 32), trustVector: ["instance-identity": 2],
            claims: ["tdx": ["mr_td": "00"]], trace: [["rule": "mr_td", "result": "pass"]], tokenJTI: "jti-\(offset)",
            evidenceSHA256: Digest.sha256(Array("evidence-\(offset)".utf8)))
    }

    /// Whether `needle` occurs anywhere in the file at `path` (a missing file contains nothing).
    static func file(_ path: String, contains needle: [UInt8]) -> Bool {
        guard let data = FileManager.default.contents(atPath: path) else { return false }
        return data.range(of: Data(needle)) != nil
    }
}
