public import CustosCrypto
public import Foundation
public import Hummingbird

/// JSON in and out of routes: bodies are parsed strictly (``JSONValue/parse(_:maxDepth:)``: no duplicate keys,
/// integers only) within a size limit, and responses are written in canonical form.
public enum HTTPJSON {
    public static func response(_ value: JSONValue, status: HTTPResponse.Status = .ok, headers: HTTPFields = [:]) -> Response {
        var fields = headers
        fields[.contentType] = "application/json"
        return Response(status: status, headers: fields, body: .init(byteBuffer: ByteBuffer(bytes: CanonicalJSON.encode(value))))
    }

    /// The request's JSON object, or a 400/413 problem.
    public static func object(_ request: Request, limit: Int) async throws -> [String: JSONValue] {
        try object(collected: try await RequestBodies.collect(request, limit: limit))
    }

    /// A collected body as a JSON object, or a 400 problem.
    public static func object(collected buffer: ByteBuffer) throws -> [String: JSONValue] {
        let value: JSONValue
        do { value = try JSONValue.parse(Array(buffer: buffer)) } catch {
            throw Problem.badRequest("the body is not acceptable JSON: \(error.message) (byte \(error.offset))")
        }
        guard case .object(let members) = value else { throw Problem.badRequest("the body must be a JSON object") }
        return members
    }

    /// Refuses members other than `allowed` (a typo never silently does nothing).
    public static func checkKeys(_ members: [String: JSONValue], allowed: Set<String>) throws {
        if let unknown = members.keys.sorted().first(where: { !allowed.contains($0) }) {
            throw Problem.badRequest("unknown member \"\(unknown)\"")
        }
    }

    public static func string(_ members: [String: JSONValue], _ key: String) throws -> String {
        guard let value = members[key] else { throw Problem.badRequest("\"\(key)\" is required") }
        guard case .string(let text) = value else { throw Problem.badRequest("\"\(key)\" must be a string") }
        return text
    }

    public static func optionalString(_ members: [String: JSONValue], _ key: String) throws -> String? {
        guard let value = members[key], value != .null else { return nil }
        guard case .string(let text) = value else { throw Problem.badRequest("\"\(key)\" must be a string") }
        return text
    }

    /// An RFC 3339 time member.
    public static func optionalDate(_ members: [String: JSONValue], _ key: String) throws -> Date? {
        guard let text = try optionalString(members, key) else { return nil }
        guard let date = RFC3339.parse(text) else { throw Problem.badRequest("\"\(key)\" must be an RFC 3339 time") }
        return date
    }
}
