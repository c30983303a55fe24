import CustosCrypto
import CustosStore
import Foundation
import GRDB
import Testing

@testable import CustosAudit

/// The verifier reads large logs in parallel seq ranges (65,536 rows or more each); here the ranges are made small so
/// that a few hundred entries span several. Rows missing at the end of a range must be reported at their own seq: the
/// next range's rows do not follow on from them.
@Suite struct AuditVerifierPartitionTests {
    static func log(entries: Int) async throws -> (AuditLogTests.Scratch, DatabasePool) {
        let scratch = try AuditLogTests.Scratch()
        let pool = try StoreDatabase.openPool(path: scratch.path)
        let log = try await AuditLog.open(pool: pool, signingKey: try Ed25519PrivateKey(), checkpointEvery: 100)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for batch in 0..<8 {
                group.addTask {
                    for index in stride(from: batch, to: entries, by: 8) { _ = try await log.append(AuditLogTests.event(index)) }
                }
            }
            try await group.waitForAll()
        }
        return (scratch, pool)
    }

    @Test(arguments: [[199], [198, 199], [199, 200], [100]])
    func rowsMissingAtARangeBoundaryAreReportedAtTheFirst(deleted: [Int]) async throws {
        let (scratch, pool) = try await Self.log(entries: 400)
        _ = scratch
        #expect(try AuditVerifier.verify(pool: pool, full: false, rowsPerPartition: 100).verified)
        try await pool.write { db in
            try db.execute(sql: "DROP TRIGGER audit_entries_no_delete")
            try db.execute(sql: "DELETE FROM audit_entries WHERE seq IN (\(deleted.map(String.init).joined(separator: ",")))")
        }
        for rows: Int64 in [100, 65_536] {
            let verification = try AuditVerifier.verify(pool: pool, full: false, rowsPerPartition: rows)
            #expect(!verification.verified)
            #expect(verification.firstBadSeq == UInt64(deleted[0]), "ranges of \(rows): \(verification)")
            #expect(verification.reason?.contains("missing") == true, "\(verification)")
        }
    }
}
