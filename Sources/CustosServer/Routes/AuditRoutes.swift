import CustosAudit
import CustosCrypto
import CustosStore
import Foundation
import Hummingbird

/// `/v1/audit`: the tamper-evident log for reviewers (service.md §11.3).
///
/// - `GET /v1/audit/entries?cursor=&limit=&type=&since=&until=&tenant=`: auditor and service-admin see every tenant's
///   entries (optionally one tenant's); tenant-admin and tenant-reader see only their own tenant's.
/// - `GET /v1/audit/checkpoint`: public; the latest signed checkpoint as a C2SP signed note (`text/plain`).
/// - `GET /v1/audit/proofs/inclusion?index=&tree_size=`: any credential (a tenant role only for its own entries);
///   `{leafIndex, treeSize, leafHash, hashes}`, hashes in lowercase hex, leaf-upward, as `custos audit proof --json`.
/// - `GET /v1/audit/proofs/consistency?first=&second=`: public; `{hashes}` in hex, as `custos audit consistency --json`.
struct AuditRoutes: Sendable {
    let log: AuditLog?
    let authenticator: Authenticator
    /// The largest page of entries.
    static let maximumLimit = 1000

    init(store: any Store, audit: AuditRecorder?) {
        self.log = audit?.log
        self.authenticator = Authenticator(store: store)
    }

    func add(to router: Router<CustosRequestContext>) {
        router.get("/v1/audit/entries") { request, _ in try await entries(request) }
        router.get("/v1/audit/checkpoint") { _, _ in try await checkpoint() }
        router.get("/v1/audit/proofs/inclusion") { request, _ in try await inclusion(request) }
        router.get("/v1/audit/proofs/consistency") { request, _ in try consistency(request) }
    }

    func requireLog() throws -> AuditLog {
        guard let log else { throw Problem.unavailable("the service runs without an audit log", retryAfter: 60) }
        return log
    }

    /// Runs a log read and maps its errors: an out-of-range size or index is the caller's (400), the rest is ours.
    func read<T>(_ body: () throws(AuditError) -> T) throws -> T {
        do { return try body() } catch {
            if error.code == .outOfRange { throw Problem.badRequest(error.reason) }
            throw Problem.internalError()
        }
    }

    /// An unsigned integer query parameter.
    static func integer(_ request: Request, _ name: String, required: Bool) throws -> UInt64? {
        guard let text = request.uri.queryParameters.get(name) else {
            if required { throw Problem.badRequest("the query parameter \"\(name)\" is required") }
            return nil
        }
        guard let value = UInt64(text), value <= UInt64(JSONValue.maxSafeInteger) else {
            throw Problem.badRequest("the query parameter \"\(name)\" must be a non-negative integer")
        }
        return value
    }

    /// The tenant filter of an entries query (shared with the console): service-wide roles read every tenant's entries or
    /// the `requested` one's; a tenant role reads its own tenant's part of the log, and naming another is a 404
    /// (existence hidden).
    static func scopedTenant(_ principal: Principal, requested: String?) throws -> String? {
        guard let own = principal.tenantID else { return requested }
        if let requested, requested != own { throw Problem.notFound() }
        return own
    }

    static func integerJSON(_ value: UInt64) -> JSONValue { .integer(Int64(clamping: value)) }
    static func hexArray(_ hashes: [[UInt8]]) -> JSONValue { .array(hashes.map { .string(Hex.encode($0)) }) }

    // MARK: Entries

    func entries(_ request: Request) async throws -> Response {
        let principal = try await authenticator.require(request, roles: [.auditor, .serviceAdmin, .tenantAdmin, .tenantReader])
        let log = try requireLog()
        let query = request.uri.queryParameters
        let tenant = try Self.scopedTenant(principal, requested: query.get("tenant"))
        let limit = try Self.integer(request, "limit", required: false).map { Int($0) } ?? 100
        guard (1...Self.maximumLimit).contains(limit) else { throw Problem.badRequest("\"limit\" must be 1…\(Self.maximumLimit)") }
        let cursor = try Self.integer(request, "cursor", required: false)
        let type = query.get("type")
        if let type, !AuditEventType.all.contains(type) { throw Problem.badRequest("\"type\" \(type) is not an audit event type") }
        func time(_ name: String) throws -> Date? {
            try query.get(name).map { text -> Date in
                guard let date = RFC3339.parse(text) else { throw Problem.badRequest("\"\(name)\" must be an RFC 3339 time") }
                return date
            }
        }
        let since = try time("since")
        let until = try time("until")
        let page = try read { () throws(AuditError) in
            try log.entries(tenant: tenant, type: type, since: since, until: until, limit: limit, cursor: cursor)
        }
        // Each entry is the parsed JCS body; its canonical re-encoding is exactly the bytes that were hashed.
        var document: [String: JSONValue] = ["entries": .array(page.records.map(\.entry))]
        if let next = page.nextCursor { document["next_cursor"] = .string(String(next)) }
        return HTTPJSON.response(.object(document))
    }

    // MARK: Checkpoint

    func checkpoint() async throws -> Response {
        let log = try requireLog()
        var signed = log.latestCheckpoint()
        if signed == nil {
            // A fresh log has none yet: sign one (idempotent for a given size).
            do { signed = try await log.signCheckpoint() } catch { throw Problem.internalError() }
        }
        guard let signed else { throw Problem.internalError() }
        return Response(
            status: .ok, headers: [.contentType: "text/plain; charset=utf-8"],
            body: .init(byteBuffer: ByteBuffer(string: signed.note)))
    }

    // MARK: Proofs

    func inclusion(_ request: Request) async throws -> Response {
        let principal = try await authenticator.require(request, roles: Set(Role.allCases))
        let log = try requireLog()
        guard let index = try Self.integer(request, "index", required: true) else { throw Problem.badRequest("\"index\" is required") }
        let treeSize = try Self.integer(request, "tree_size", required: false)
        if let own = principal.tenantID {
            let page = try read { () throws(AuditError) in try log.entries(limit: 1, cursor: index) }
            guard let record = page.records.first, record.seq == index, record.entry["tenant"]?.stringValue == own else {
                throw Problem.notFound()
            }
        }
        let proof = try read { () throws(AuditError) in try log.inclusionProof(index: index, treeSize: treeSize) }
        return HTTPJSON.response([
            "leafIndex": Self.integerJSON(proof.leafIndex), "treeSize": Self.integerJSON(proof.treeSize),
            "leafHash": .string(Hex.encode(proof.leafHash)), "hashes": Self.hexArray(proof.hashes),
        ])
    }

    func consistency(_ request: Request) throws -> Response {
        let log = try requireLog()
        guard let first = try Self.integer(request, "first", required: true),
            let second = try Self.integer(request, "second", required: true)
        else { throw Problem.badRequest("\"first\" and \"second\" are required") }
        let hashes = try read { () throws(AuditError) in try log.consistencyProof(first: first, second: second) }
        return HTTPJSON.response(["hashes": Self.hexArray(hashes)])
    }
}
